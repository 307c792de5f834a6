"""The downstream test of a recovered codebook: LoRA on a few songs of unseen timbres, two routes compared.

Route (i) tokenises the fine-tune songs with the recovered tokenizer and keeps the base model's sketch tables
(what ``trainable.sketch_embedding: auto`` does for a codebook recovered from the init weights). Route (ii) is
today's k-means route: a fresh codebook fitted on the fine-tune songs, its tables retrained. Both get the same
adapters, steps and songs; each keeps the better of two learning rates (chosen on held-out flow loss) per seed.
Held-out songs of the new timbres are scored with each route's own ids but the same latents, noise and timesteps.
"""

from __future__ import annotations

import copy
import logging
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from songbloom.building.lora import LoRASettings, apply_lora
from songbloom.building.sketch_tables import SketchTablesLayout, resolve_sketch_tables, sketch_tables_sha256
from songbloom.building.trainable import mark_full_sets
from songbloom.models.songbloom import SongBloomModel
from songbloom.proxy.teacher import FitSettings, fit, song_samples
from songbloom.sketch.artifact import recovered_codebook
from songbloom.sketch.recovery.evaluate import EvalSong, ar_information, teacher_forced_losses

logger = logging.getLogger(__name__)

ADAPTER_TARGETS = ("lm_attn", "lm_mlp", "dit_attn", "dit_mlp", "conditioners")


@dataclass
class DownstreamSettings:
    steps: int = 150
    batch_size: int = 4
    learning_rates: tuple[float, ...] = (1e-3, 3e-3)
    tables_lr: float = 5e-3  # route (ii): the retrained tables' own rate (japanese_lora's fully_trained_lr idea)
    seeds: tuple[int, ...] = (0, 1, 2)
    lora_rank: int = 8


@dataclass
class RouteData:
    """One route's view of the fine-tune and held-out songs: the same latents, that route's ids."""

    train_ids: list[torch.Tensor]
    heldout_ids: list[torch.Tensor]
    codebook_path: Path | None  # a recovered codebook artifact (route i); None for a fresh k-means codebook


@dataclass
class RouteResult:
    flow: list[float] = field(default_factory=list)  # per seed, at the chosen learning rate
    ar_info: list[float] = field(default_factory=list)
    chosen_lr: list[float] = field(default_factory=list)
    layout: str = ""

    def summary(self) -> dict[str, float]:
        n = len(self.flow)
        sd = statistics.stdev(self.flow) if n > 1 else math.nan
        return {"flow": statistics.fmean(self.flow), "flow_se": sd / math.sqrt(n) if n > 1 else math.nan,
                "ar_info": statistics.fmean(self.ar_info), "flow_per_seed": list(self.flow),
                "ar_info_per_seed": list(self.ar_info), "chosen_lr": list(self.chosen_lr), "tables": self.layout}


def tables_layout(base: SongBloomModel, codebook_path: Path | None) -> SketchTablesLayout:
    """The layout a LoRA run with ``trainable.sketch_embedding: auto`` gives the tables for this codebook: the
    same decision code as training (kept when the codebook was recovered from these tables)."""
    recovered = recovered_codebook(codebook_path) if codebook_path is not None else None
    return resolve_sketch_tables("auto", "frozen", source="export", new_codebook=True, recovered=recovered,
                                 init_sha256=sketch_tables_sha256(base), init_name="proxy_teacher")


def prepare_model(base: SongBloomModel, layout: SketchTablesLayout, rank: int) -> SongBloomModel:
    """A copy of the base with adapters; the sketch tables train in full when the layout says so."""
    if layout.mode not in ("frozen", "train"):
        raise ValueError(f"the proxy runs the frozen and train layouts only, not {layout.mode!r}")
    model = copy.deepcopy(base).train()
    model.requires_grad_(False)
    apply_lora(model, LoRASettings(targets=ADAPTER_TARGETS, rank=rank, alpha=2.0 * rank, dropout=0.0))
    if layout.trains_in_full:
        mark_full_sets(model, ["sketch_embedding", "sketch_classifier"])
    return model


def run_route(
    base: SongBloomModel,
    route: RouteData,
    train_latents: Sequence[torch.Tensor],
    train_conditions: Sequence[tuple[list[int], torch.Tensor]],
    heldout: Sequence[EvalSong],
    settings: DownstreamSettings,
) -> RouteResult:
    """Fine-tune per seed and learning rate; keep, per seed, the rate with the lower held-out flow loss."""
    result = RouteResult()
    layout = tables_layout(base, route.codebook_path)
    result.layout = layout.mode
    logger.info("downstream route: sketch tables %s (%s)", layout.mode, layout.reason)
    num_codes = base.cfg.num_pitch
    samples = song_samples(list(train_latents), route.train_ids, [c[0] for c in train_conditions],
                           [c[1] for c in train_conditions])
    for seed in settings.seeds:
        best: tuple[float, float, float] | None = None
        for lr in settings.learning_rates:
            model = prepare_model(base, layout, settings.lora_rank)
            fit(model, samples, FitSettings(steps=settings.steps, batch_size=settings.batch_size, lr=lr,
                                            warmup_steps=10, seed=seed,
                                            fully_trained_lr=settings.tables_lr if layout.trains_in_full else None),
                what=f"downstream ({layout.mode} tables, lr {lr:g}, seed {seed})")
            loss = teacher_forced_losses(model, heldout, {"ids": route.heldout_ids}, seed=10_000)["ids"]
            info = ar_information(loss.ar, route.heldout_ids, num_codes)
            logger.info("route with %s tables, seed %d, lr %g: held-out flow %.4f, AR %.3f (info %.3f nats)",
                        layout.mode, seed, lr, loss.flow, loss.ar, info)
            if best is None or loss.flow < best[0]:
                best = (loss.flow, info, lr)
        assert best is not None
        result.flow.append(best[0])
        result.ar_info.append(best[1])
        result.chosen_lr.append(best[2])
    return result


def separation(better: RouteResult, worse: RouteResult) -> float:
    """How many standard errors of the difference the mean flow losses lie apart (positive: ``better`` wins)."""
    se = math.sqrt(better.summary()["flow_se"] ** 2 + worse.summary()["flow_se"] ** 2)
    diff = statistics.fmean(worse.flow) - statistics.fmean(better.flow)
    return diff / se if se > 0 else (math.inf if diff > 0 else -math.inf)
