"""Train proxy models with the real training module: the teacher from scratch, and the downstream fine-tunes.

Both go through :class:`~songbloom.training.lit_module.SongBloomLitModule` and a Lightning ``Trainer`` on
in-memory songs: the proxy tests the training code users run, not a copy of it. No run directory, logger or
checkpoint is written; the caller exports what it keeps.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from songbloom.config import SongBloomConfig
from songbloom.config.run import OptimConfig, TrainingConfig
from songbloom.models.songbloom import SongBloomModel
from songbloom.training.batch import collate_songs
from songbloom.training.lit_module import SongBloomLitModule

logger = logging.getLogger(__name__)


@dataclass
class FitSettings:
    steps: int = 500
    batch_size: int = 8
    lr: float = 2e-3
    warmup_steps: int = 20
    weight_decay: float = 0.0
    # The release weighs flow 0.1; the proxy's DiT must learn in a few hundred steps, so both terms count alike.
    flow_loss_weight: float = 1.0
    seed: int = 0
    fully_trained_lr: float | None = None


def teacher_config(num_codes: int) -> SongBloomConfig:
    """The tiny preset with one sketch id per hidden code (num_pitch = codes)."""
    return SongBloomConfig.from_name("tiny", num_pitch=num_codes)


def song_samples(latents: Sequence[torch.Tensor], ids: Sequence[torch.Tensor], lyric_ids: Sequence[Sequence[int]],
                 prompts: Sequence[torch.Tensor | None]) -> list[dict[str, Any]]:
    """Per-song sample dicts in the form :func:`~songbloom.training.batch.collate_songs` takes."""
    return [{"key": str(i), "sketch": ids[i], "latents": latents[i], "lyric_ids": torch.as_tensor(list(lyric_ids[i])),
             "prompt_latents": prompts[i]} for i in range(len(latents))]


class _ProgressLog(L.Callback):
    """One log line every ``every`` steps (no progress bar: the proxy runs inside a benchmark's log)."""

    def __init__(self, every: int, what: str):
        self.every, self.what = every, what

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step % self.every == 0 or step == trainer.max_steps:
            m = trainer.callback_metrics
            logger.info("%s step %d/%d: AR loss %.3f, flow loss %.4f", self.what, step, trainer.max_steps,
                        float(m.get("train/ar_loss", float("nan"))), float(m.get("train/flow_loss", float("nan"))))


def fit(model: SongBloomModel, samples: list[dict[str, Any]], settings: FitSettings, *,
        what: str = "fit") -> dict[str, float]:
    """Train ``model`` in place for ``settings.steps`` optimizer steps; returns the last logged losses."""
    cfg = model.cfg
    train = TrainingConfig(
        flow_loss_weight=settings.flow_loss_weight,
        sample_latents=False,  # the proxy's latents are exact (its VAE is deterministic)
        dropout_seed=settings.seed,
        optim=OptimConfig(lr=settings.lr, weight_decay=settings.weight_decay, warmup_steps=settings.warmup_steps,
                          fully_trained_lr=settings.fully_trained_lr, betas=(0.9, 0.99)),
    )
    lit = SongBloomLitModule(model, train)
    gen = torch.Generator().manual_seed(settings.seed)
    loader = DataLoader(samples, batch_size=min(settings.batch_size, len(samples)), shuffle=True, generator=gen,
                        drop_last=True, collate_fn=lambda s: collate_songs(s, block_size=cfg.block_size,
                                                                           eos_id=cfg.eos_id))
    trainer = L.Trainer(
        max_steps=settings.steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
        max_epochs=-1, callbacks=[_ProgressLog(max(1, settings.steps // 5), what)],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        trainer.fit(lit, train_dataloaders=loader)
    model.eval()
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


def train_teacher(num_codes: int, samples: list[dict[str, Any]], settings: FitSettings) -> SongBloomModel:
    """A tiny SongBloom trained from scratch on the proxy songs and their hidden ids."""
    cfg = teacher_config(num_codes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        model = SongBloomModel(cfg.model)
    metrics = fit(model, samples, settings, what="teacher")
    logger.info("teacher trained %d steps: %s", settings.steps,
                {k: round(v, 3) for k, v in metrics.items() if k.startswith("train/")})
    return model

