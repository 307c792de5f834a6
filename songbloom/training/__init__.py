"""Training: the Lightning wrapper, LoRA, Hydra-driven runs with resumable, atomic checkpoints."""

from songbloom.training.run import run

__all__ = ["run"]
