"""The CPU proxy of sketch-id recovery (issue #17): a world where the base model's true sketch ids are known.

A tiny teacher SongBloom is trained on ids from a hidden tokenizer; the recovery (``python -m songbloom.sketch
recover``) sees only the teacher's release-format export, the proxy VAE and the MuQ, and its codebook is scored
against the hidden ids. ``benchmarks/sketch_recovery.py`` runs it; tests run a small version.
"""

from songbloom.proxy.benchmark import ProxySettings, run_benchmark
from songbloom.proxy.downstream import DownstreamSettings

__all__ = ["DownstreamSettings", "ProxySettings", "run_benchmark"]
