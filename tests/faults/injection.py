"""Test-only fault injection, added to a run from the command line (never part of ``conf/`` or the typed config):

    python train.py ... +callbacks.fault._target_=tests.faults.injection.FaultInjection \
        +callbacks.fault.sigkill_after_step=3          # SIGKILL right after the step-3 checkpoint
    python train.py ... +callbacks.fault._target_=tests.faults.injection.FaultInjection \
        +callbacks.fault.sigkill_during_save_step=4    # SIGKILL while the step-4 checkpoint is half written
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import lightning as L

from songbloom.training.checkpointing import AtomicStepCheckpoint

logger = logging.getLogger(__name__)

# The override that adds this callback to a run (then +callbacks.fault.<key>=<value>).
FAULT = f"+callbacks.fault._target_={__name__}.FaultInjection"


def _kill_mid_write(tmp: Path) -> None:
    """Cut the temp file in half (a write in progress), then SIGKILL ourselves."""
    size = tmp.stat().st_size
    with open(tmp, "r+b") as f:
        f.truncate(size // 2)
    logger.warning("fault injection: SIGKILL while %s is half written (%d of %d bytes)", tmp, size // 2, size)
    os.kill(os.getpid(), signal.SIGKILL)


class FaultInjection(L.Callback):
    """Wraps the run's step checkpointer (after a save) and ``trainer.save_checkpoint`` (mid-write)."""

    def __init__(self, sigkill_after_step: int | None = None, sigkill_during_save_step: int | None = None):
        self.sigkill_after_step = sigkill_after_step
        self.sigkill_during_save_step = sigkill_during_save_step

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.sigkill_during_save_step is not None:
            self._wrap_save_checkpoint(trainer, f".step-{int(self.sigkill_during_save_step):07d}.ckpt.tmp")
        if self.sigkill_after_step is not None:
            for cb in trainer.callbacks:
                if isinstance(cb, AtomicStepCheckpoint):
                    self._wrap_step_save(cb, int(self.sigkill_after_step))

    @staticmethod
    def _wrap_save_checkpoint(trainer: L.Trainer, tmp_name: str) -> None:
        save = trainer.save_checkpoint

        def save_then_maybe_kill(filepath, *args, **kwargs):
            save(filepath, *args, **kwargs)
            if Path(filepath).name == tmp_name and trainer.is_global_zero:
                _kill_mid_write(Path(filepath))

        trainer.save_checkpoint = save_then_maybe_kill

    @staticmethod
    def _wrap_step_save(cb: AtomicStepCheckpoint, kill_step: int) -> None:
        save = cb.save

        def save_then_maybe_kill(trainer, step):
            final = save(trainer, step)
            if step == kill_step:
                logger.warning("fault injection: SIGKILL after the step-%d checkpoint", step)
                os.kill(os.getpid(), signal.SIGKILL)
            return final

        cb.save = save_then_maybe_kill
