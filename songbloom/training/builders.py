"""The ``_target_``s of ``conf/logger/*.yaml`` and ``conf/callbacks/default.yaml`` that need the run's context.

Each takes its config keys as keyword arguments and the run's context (``run_dir``, ``songbloom_config``,
``run_config``, ``trainer_config``, ``logger_enabled``) by parameter name; ``songbloom.training.instantiate``
supplies the context. Plain Lightning classes can be named directly when they need no context.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from songbloom.config import SongBloomConfig
from songbloom.config.run import as_run_config
from songbloom.training.run_dir import atomic_write_text

# -- loggers --------------------------------------------------------------------------------------------------


def csv_logger(run_dir: Path):
    """``logger=csv``: ``<run_dir>/csv/metrics.csv``."""
    from lightning.pytorch.loggers import CSVLogger

    return CSVLogger(save_dir=str(run_dir), name="csv", version="")


def wandb_logger(run_dir: Path, run_config: dict[str, Any], project: str = "songbloom", offline: bool = True):
    """``logger=wandb``: one W&B run per run dir, so requeues and resumes continue the same curves."""
    from lightning.pytorch.loggers import WandbLogger

    id_file = Path(run_dir) / "wandb_id.txt"
    if not id_file.is_file():
        import uuid

        atomic_write_text(id_file, uuid.uuid4().hex[:12])
    return WandbLogger(
        project=project,
        name=Path(run_dir).name,
        id=id_file.read_text().strip(),
        save_dir=str(run_dir),
        offline=bool(offline),
        resume="allow",
        config=run_config,
        log_model=False,
    )


# -- callbacks ------------------------------------------------------------------------------------------------


def step_checkpoint(ckpt_dir: Path, every_n_steps: int = 0, keep_last: int = 3, save_at_end: bool = True):
    """``callbacks.checkpoint``: atomic ``step-N.ckpt`` + ``last.ckpt`` in the run dir (what auto-resume reads)."""
    from songbloom.training.checkpointing import AtomicStepCheckpoint

    return AtomicStepCheckpoint(ckpt_dir, int(every_n_steps), int(keep_last), bool(save_at_end))


def best_checkpoint(ckpt_dir: Path, monitor: str = "val/loss", mode: str = "min", save_top_k: int = 2):
    """``callbacks.best_checkpoint``: the ``save_top_k`` best checkpoints on ``monitor`` in ``checkpoints/best/``,
    written only after a validation that produced the metric (none without validation); never resumed from."""
    from songbloom.training.best_checkpoints import BestCheckpoints

    return BestCheckpoints(ckpt_dir, monitor=monitor, mode=mode, save_top_k=int(save_top_k))


def early_stopping(monitor: str = "val/loss", mode: str = "min", patience: int = 5, min_delta: float = 0.0):
    """``callbacks.early_stopping``: stop when ``monitor`` has not improved by ``min_delta`` for ``patience``
    validations in a row; checked after validation only, and silent when the run has no validation."""
    from lightning.pytorch.callbacks import EarlyStopping

    return EarlyStopping(monitor=monitor, mode=mode, patience=int(patience), min_delta=float(min_delta),
                         strict=False, check_on_train_epoch_end=False, verbose=True)  # fmt: skip


EVAL_KEYS = ("every_n_steps", "timesteps", "seed", "max_batches", "time_budget_s", "distributed", "use_ema",
             "run_at_end")  # fmt: skip


def evaluation(run_dir: Path, **cfg: Any):
    """``callbacks.eval``: held-out teacher-forced metrics every N steps (``songbloom.eval``)."""
    from songbloom.eval.callback import build_eval_callback

    return build_eval_callback({"enabled": True, **cfg}, run_dir=run_dir)


evaluation.__config_keys__ = EVAL_KEYS


def demo_audio(run_dir: Path, songbloom_config: SongBloomConfig, run_config: dict[str, Any], **cfg: Any):
    """``callbacks.demo_audio``: demo songs beside the base model's (A/B) every N steps on rank 0."""
    from songbloom.training.demo_callback import DemoAudioCallback
    from songbloom.training.demo_settings import DemoAudioSettings

    settings = DemoAudioSettings.from_config({"enabled": True, **cfg})
    demo_exp = as_run_config(run_config).demo.enabled
    return DemoAudioCallback(settings, songbloom_config, run_dir, demo_experiment=demo_exp)


def _demo_audio_keys() -> list[str]:
    from songbloom.training.demo_settings import DemoAudioSettings

    return [k for k in DemoAudioSettings.__dataclass_fields__ if k != "enabled"]


class _DemoAudioKeys:
    def __iter__(self):
        return iter(_demo_audio_keys())


demo_audio.__config_keys__ = _DemoAudioKeys()


def progress_bar(trainer_config: dict[str, Any], style: str = "auto", refresh_rate: int | None = None,
                 log_file_every_n_steps: int = 50):
    """``callbacks.progress_bar``: ``style`` auto (rich on a terminal, one line every ``log_file_every_n_steps``
    optimizer steps in a log file), log, rich or tqdm."""
    from songbloom.training.logging_callbacks import progress_bar as build

    cfg = {"style": style, "refresh_rate": refresh_rate, "log_file_every_n_steps": log_file_every_n_steps}
    return build(cfg, trainer_config)


def lr_monitor(logger_enabled: bool, logging_interval: str = "step"):
    """``callbacks.lr_monitor``: Lightning's per-parameter-group learning rates (needs a logger)."""
    if not logger_enabled:
        return None
    from lightning.pytorch.callbacks import LearningRateMonitor

    return LearningRateMonitor(logging_interval=logging_interval)
