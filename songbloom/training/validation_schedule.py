"""Validation every N *optimizer* steps, like checkpoints, demos and evaluation.

Lightning's ``val_check_interval`` counts micro-batches: with ``accumulate_grad_batches=8`` an interval of 500
validated every ~62 optimizer steps, and not on a step boundary when an epoch's length is not a multiple of the
accumulation. :class:`OptimizerStepValidation` takes the decision over: after each batch it sets the trainer's
``val_check_batch`` so that Lightning's own check fires exactly after the optimizer steps that are multiples of
N (and never in between). An integer ``trainer.val_check_interval`` therefore means optimizer steps in this
project; a float (a fraction of an epoch) keeps Lightning's meaning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L

NEVER = 2**62  # a batch count no run reaches: Lightning's modulus check stays false


class OptimizerStepValidation(L.Callback):
    """Run the validation loop after every ``every_n_steps``-th optimizer step (and at no other batch)."""

    def __init__(self, every_n_steps: int):
        self.every_n_steps = int(every_n_steps)
        self._last_step = -1

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_step = trainer.global_step  # a resumed run does not validate its restored step again
        trainer.val_check_batch = NEVER

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        due = step > 0 and step != self._last_step and step % self.every_n_steps == 0
        if due:
            self._last_step = step
        loop = trainer.fit_loop.epoch_loop
        current = loop.total_batch_idx if trainer.check_val_every_n_epoch is None else loop.batch_idx
        trainer.val_check_batch = current + 1 if due else NEVER  # read by Lightning right after this hook


def optimizer_step_validation(trainer_config: Mapping[str, Any]) -> list[L.Callback]:
    """``[OptimizerStepValidation]`` for an integer ``val_check_interval``; ``[]`` for a fraction or none."""
    interval = trainer_config.get("val_check_interval")
    if isinstance(interval, bool) or not isinstance(interval, int) or interval <= 0:
        return []
    return [OptimizerStepValidation(interval)]
