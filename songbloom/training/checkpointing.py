"""Step checkpoints written atomically, with bounded retention, and the lookup used by auto-resume.

A checkpoint is first written to a hidden temporary name, fsynced, then renamed to ``step=NNNNNNN.ckpt``;
``last.ckpt`` is a hard link swapped in by rename. A kill at any moment leaves either the previous complete
``last.ckpt`` or the new one, never a partial file under a visible name.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import lightning as L

from songbloom.checkpoints.safe_load import torch_load_safely

logger = logging.getLogger(__name__)

STEP_PATTERN = re.compile(r"^step=(\d+)\.ckpt$")
LAST = "last.ckpt"


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def step_checkpoints(ckpt_dir: Path) -> list[tuple[int, Path]]:
    out = []
    for p in Path(ckpt_dir).glob("step=*.ckpt"):
        m = STEP_PATTERN.match(p.name)
        if m:
            out.append((int(m.group(1)), p))
    return sorted(out)


def find_resume_checkpoint(ckpt_dir: Path, hpc_dir: Path | None = None) -> Path | None:
    """The readable checkpoint with the highest global step.

    Candidates: ``last.ckpt``, the step checkpoints, and Lightning's SLURM ``hpc_ckpt_*.ckpt`` in ``hpc_dir``
    (written by its SIGUSR1 requeue handler). Unreadable files (a copy cut short, a full disk) are skipped.
    """
    ckpt_dir = Path(ckpt_dir)
    candidates = [ckpt_dir / LAST] if (ckpt_dir / LAST).is_file() else []
    candidates += [p for _, p in reversed(step_checkpoints(ckpt_dir))]
    if hpc_dir is not None:
        candidates += sorted(Path(hpc_dir).glob("hpc_ckpt_*.ckpt"))
    best: tuple[int, Path] | None = None
    for path in candidates:
        try:
            step = int(torch_load_safely(path).get("global_step", -1))
        except Exception as e:  # a damaged file: try the others
            logger.warning("skipping unreadable checkpoint %s: %s", path, e)
            continue
        if best is None or step > best[0]:
            best = (step, path)
    return best[1] if best else None


def write_step_checkpoint(trainer: L.Trainer, ckpt_dir: Path, step: int, *, keep_last: int | None = None) -> Path:
    """Write ``step=N.ckpt`` atomically (temp file, fsync, rename), point ``last.ckpt`` at it, prune to
    ``keep_last``, then wait for every rank. A kill at any moment leaves the previous ``last.ckpt`` intact
    (tests/faults/injection.py proves it)."""
    ckpt_dir = Path(ckpt_dir)
    final = ckpt_dir / f"step={step:07d}.ckpt"
    tmp = ckpt_dir / f".step={step:07d}.ckpt.tmp"
    if trainer.is_global_zero:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(tmp)
    if trainer.is_global_zero:
        _fsync_file(tmp)
        os.replace(tmp, final)
        link_tmp = ckpt_dir / f".{LAST}.tmp"
        link_tmp.unlink(missing_ok=True)
        os.link(final, link_tmp)
        os.replace(link_tmp, ckpt_dir / LAST)
        _fsync_dir(ckpt_dir)
        if keep_last:
            for _, old in step_checkpoints(ckpt_dir)[:-keep_last]:
                old.unlink(missing_ok=True)
        logger.info("checkpoint %s", final)
    trainer.strategy.barrier("songbloom_checkpoint")
    return final


class AtomicStepCheckpoint(L.Callback):
    """Save every ``every_n_steps`` optimizer steps and at the end; keep the newest ``keep_last``."""

    def __init__(
        self,
        ckpt_dir: str | Path,
        every_n_steps: int,
        keep_last: int = 3,
        save_at_end: bool = True,
    ):
        self.ckpt_dir = Path(ckpt_dir)
        self.every_n_steps = int(every_n_steps)
        self.keep_last = max(int(keep_last), 1)
        self.save_at_end = save_at_end
        self._last_saved_step = -1

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Remove temp files a killed save left behind (they can be as large as a whole checkpoint)."""
        if trainer.is_global_zero and self.ckpt_dir.is_dir():
            for stale in [*self.ckpt_dir.glob(".step=*.ckpt.tmp"), *self.ckpt_dir.glob(f".{LAST}.tmp")]:
                logger.warning("removing %s, left by a save that was interrupted", stale)
                stale.unlink(missing_ok=True)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if self.every_n_steps > 0 and step > 0 and step % self.every_n_steps == 0 and step != self._last_saved_step:
            self.save(trainer, step)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.save_at_end and trainer.global_step != self._last_saved_step:
            self.save(trainer, trainer.global_step)

    def save(self, trainer: L.Trainer, step: int) -> Path:
        final = write_step_checkpoint(trainer, self.ckpt_dir, step, keep_last=self.keep_last)
        self._last_saved_step = step
        return final
