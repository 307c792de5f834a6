"""The training length in epochs: ``trainer.max_steps`` derived from ``training.target_epochs``, and a warning
when a run makes more passes over its data than ``training.memorisation_warning_epochs`` (docs/training.md).

A handful of songs and thousands of optimizer steps means hundreds of epochs: the model memorises the songs
instead of learning the style. The step count is therefore best derived from the data the run has.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import lightning as L

from songbloom.config.run import TrainingConfig

logger = logging.getLogger(__name__)

MEMORISATION = (
    "trainer.max_steps={max_steps} is {epochs:.1f} epochs over the training data ({batches} batches of the "
    "data per epoch and rank, {per_step} per optimizer step), more than training.memorisation_warning_epochs="
    "{limit:g}: with little data the model memorises the songs; lower trainer.max_steps or set "
    "trainer.max_steps=null and training.target_epochs (docs/training.md, 'How long to train')"
)


class TrainingLengthError(ValueError):
    """Neither ``trainer.max_steps`` nor ``training.target_epochs`` says how long to train."""


def batches_per_epoch(datamodule: Any, world_size: int) -> int | None:
    """Micro-batches per epoch and rank: from the synthetic set's batch sampler, or the shard datamodule's
    ``batches_per_epoch`` (after its ``setup``); None for a datamodule that tells neither."""
    sampler = getattr(datamodule, "sampler", None)
    if sampler is not None and hasattr(sampler, "num_items") and hasattr(sampler, "batch_size"):
        return max(1, int(sampler.num_items) // (int(sampler.batch_size) * max(world_size, 1)))
    if getattr(datamodule, "batches_per_epoch", None) is None and hasattr(datamodule, "setup"):
        datamodule.setup("fit")
    n = getattr(datamodule, "batches_per_epoch", None)
    return int(n) if n else None


def steps_per_epoch(batches: int, accumulate: int) -> int:
    """Optimizer steps per epoch: Lightning steps after each ``accumulate`` micro-batches and at an epoch's end."""
    return max(1, math.ceil(batches / max(int(accumulate), 1)))


def apply_target_epochs(trainer: L.Trainer, datamodule: Any, training: TrainingConfig) -> int:
    """Set ``trainer.max_steps`` from ``training.target_epochs`` when it is unset (-1); warn above the
    memorisation limit either way. Returns the run's ``max_steps``."""
    batches = batches_per_epoch(datamodule, trainer.world_size)
    per_step = int(trainer.accumulate_grad_batches)
    max_steps = int(trainer.max_steps)
    if max_steps < 0:
        if training.target_epochs is None or batches is None:
            raise TrainingLengthError(
                "trainer.max_steps is not set and the length cannot be derived: set trainer.max_steps, or "
                "training.target_epochs with a datamodule that knows its epoch length"
            )
        max_steps = max(1, round(float(training.target_epochs) * steps_per_epoch(batches, per_step)))
        trainer.fit_loop.epoch_loop.max_steps = max_steps  # what trainer.max_steps reads
        logger.info("trainer.max_steps=%d from training.target_epochs=%g (%d batches per epoch, %d per step)",
                    max_steps, training.target_epochs, batches, per_step)  # fmt: skip
    if batches is not None:
        epochs = max_steps / steps_per_epoch(batches, per_step)
        if epochs > float(training.memorisation_warning_epochs):
            limit = training.memorisation_warning_epochs
            logger.warning(
                MEMORISATION.format(max_steps=max_steps, epochs=epochs, batches=batches, per_step=per_step, limit=limit)
            )
    return max_steps
