"""The run config's optional callbacks, assembled: demo audio, progress bar, per-group LR monitor, W&B closing."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L

from songbloom.config import SongBloomConfig
from songbloom.training.demo_callback import DemoAudioCallback
from songbloom.training.demo_settings import DemoAudioSettings
from songbloom.training.logging_callbacks import FinishWandbRun, progress_bar


def build_training_callbacks(c: Mapping[str, Any], run_dir: str | Path, sb_cfg: SongBloomConfig) -> list[L.Callback]:
    """The optional callbacks from the run config: demo audio, progress bar, optional per-group LR monitor.

    The training module already logs ``train/lr`` and throughput (``train/audio_seconds_per_s``,
    ``train/tokens_per_s``) every step; ``callbacks.lr_monitor: true`` adds Lightning's per-group LR too.
    """
    cb_cfg = dict(c.get("callbacks") or {})
    out: list[L.Callback] = []
    bar = progress_bar(cb_cfg.get("progress_bar"), c.get("trainer") or {})
    if bar is not None:
        out.append(bar)
    has_logger = (c.get("logger") or {}).get("kind", "none") != "none"
    if cb_cfg.get("lr_monitor") and has_logger:
        from lightning.pytorch.callbacks import LearningRateMonitor

        out.append(LearningRateMonitor(logging_interval="step"))
    if (c.get("logger") or {}).get("kind") == "wandb":
        out.append(FinishWandbRun())
    settings = DemoAudioSettings.from_config(cb_cfg.get("demo_audio"))
    if settings.enabled:
        demo_exp = bool((c.get("demo") or {}).get("enabled"))
        out.append(DemoAudioCallback(settings, sb_cfg, run_dir, demo_experiment=demo_exp))
    return out
