"""What a run shows while it trains, beside its metrics: the console progress bar, and closing the W&B run."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

import lightning as L
from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar

logger = logging.getLogger(__name__)

STYLES = ("auto", "rich", "tqdm", "log")


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


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    return f"{h}h{rem // 60:02d}m" if h else f"{rem // 60}m{rem % 60:02d}s"


def progress_line(step: int, max_steps: int, record: Mapping[str, Any], seconds_per_step: float | None) -> str:
    """``step 100/5000 (2.0%) loss 1.2345 ar_loss 1.1 flow_loss 0.9 lr 1.00e-04 2.31 s/step eta 3h08m``."""
    parts = [f"step {step}/{max_steps} ({100.0 * step / max_steps:.1f}%)" if max_steps > 0 else f"step {step}"]
    parts += [f"{k} {float(record[k]):.4f}" for k in ("loss", "ar_loss", "flow_loss") if k in record]
    if "lr" in record:
        parts.append(f"lr {float(record['lr']):.2e}")
    if seconds_per_step is not None:
        parts.append(f"{seconds_per_step:.2f} s/step")
        if max_steps > 0:
            parts.append(f"eta {_duration(seconds_per_step * (max_steps - step))}")
    return " ".join(parts)


class LogLineProgress(ProgressBar):
    """Progress for log files: one readable line every ``every_n_steps`` optimizer steps, through the logging
    system (``train.log`` and the console), instead of a progress bar redrawn as a new line at each refresh."""

    def __init__(self, every_n_steps: int = 50):
        super().__init__()
        self.every_n_steps = max(int(every_n_steps), 1)
        self._enabled = True
        self._last_step = -1
        self._start: tuple[float, int] | None = None

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = (time.monotonic(), trainer.global_step)
        self._last_step = trainer.global_step

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if not self._enabled or step == self._last_step or step % self.every_n_steps:
            return
        self._last_step = step
        records = getattr(pl_module, "step_records", None) or [{}]
        rate = None
        if self._start is not None and step > self._start[1]:
            rate = (time.monotonic() - self._start[0]) / (step - self._start[1])
        if trainer.is_global_zero:
            logger.info("%s", progress_line(step, int(trainer.max_steps), records[-1], rate))


def progress_bar(cfg: Mapping[str, Any] | None, trainer_cfg: Mapping[str, Any]) -> L.Callback | None:
    """Progress: a Rich bar on a terminal; in a log file (non-TTY) one line every N optimizer steps
    (:class:`LogLineProgress`); ``style`` tqdm or rich forces that bar."""
    if trainer_cfg.get("enable_progress_bar", True) is False:
        return None  # Lightning refuses a progress-bar callback when the trainer disables the bar
    from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar

    cfg = dict(cfg or {})
    tty = sys.stdout.isatty()
    kind = cfg.get("style", "auto")
    rate = cfg.get("refresh_rate")
    if rate is None:
        rate = 1 if tty else int(cfg.get("log_file_every_n_steps", 50))
    if kind not in STYLES:
        raise ValueError(f"callbacks.progress_bar.style={kind!r}: choose {', '.join(STYLES)}")
    if kind == "rich" or (kind == "auto" and tty):
        return RichProgressBar(refresh_rate=int(rate))  # rich is a pinned dependency
    if kind == "tqdm":
        return TQDMProgressBar(refresh_rate=int(rate))
    return LogLineProgress(int(cfg.get("log_file_every_n_steps", 50)))
