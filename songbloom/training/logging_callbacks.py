"""What a run shows while it trains, beside its metrics: the console progress bar, and closing the W&B run."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

import lightning as L

logger = logging.getLogger(__name__)


class FinishWandbRun(L.Callback):
    """Close the W&B run when fit ends: its offline files are then complete on disk, and a later run in the same
    process (a resume, a test) starts its own run instead of Lightning silently reusing this one."""

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        from lightning.pytorch.loggers import WandbLogger

        if stage != "fit" or not trainer.is_global_zero:
            return
        for lg in trainer.loggers:
            if isinstance(lg, WandbLogger) and lg._experiment is not None:
                try:
                    lg.experiment.finish()
                except Exception as e:  # closing the logger must not turn a finished run into a failure
                    logger.warning("closing the W&B run failed: %s", e)


def progress_bar(cfg: Mapping[str, Any] | None, trainer_cfg: Mapping[str, Any]) -> L.Callback | None:
    """A console progress bar: Rich on a terminal, TQDM updated every N steps in a log file (non-TTY)."""
    if trainer_cfg.get("enable_progress_bar", True) is False:
        return None  # Lightning refuses a progress-bar callback when the trainer disables the bar
    from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar

    cfg = dict(cfg or {})
    tty = sys.stdout.isatty()
    kind = cfg.get("style", "auto")
    rate = cfg.get("refresh_rate")
    if rate is None:
        rate = 1 if tty else int(cfg.get("log_file_every_n_steps", 50))
    if kind == "rich" or (kind == "auto" and tty):
        return RichProgressBar(refresh_rate=int(rate))  # rich is a pinned dependency
    if kind not in ("auto", "rich", "tqdm"):
        raise ValueError(f"callbacks.progress_bar.style={kind!r}: choose auto, rich or tqdm")
    return TQDMProgressBar(refresh_rate=int(rate))
