"""Memory that does not depend on the batch: weights, gradients, AdamW states, EMA shadows.

Counted exactly on the run's own generator built on the ``meta`` device (no weights are allocated): the same
building code as training (:func:`songbloom.building.model.apply_training_layout`), so LoRA adapters, fully
trained tensor sets and ``lora.base_dtype`` come out as they will be.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import torch
from torch import nn

from songbloom.building.sketch_tables import SketchTablesLayout
from songbloom.config.run import RunConfig
from songbloom.models.songbloom import SongBloomModel
from songbloom.plan.settings import PlanSettings


@dataclass(frozen=True)
class StaticBytes:
    params: int  # every parameter and buffer, as held
    trainable: int  # bytes of the trainable parameters (= their gradients, in the parameter dtype)
    trainable_numel: int
    largest_trainable: int  # bytes of the biggest trainable tensor (per-tensor optimizer temporaries)
    largest_block: int  # bytes of the biggest LM/DiT block (an FSDP unit gathered at a time)
    total_numel: int


def planned_sketch_tables(rc: RunConfig) -> SketchTablesLayout | None:
    """The run's sketch tables layout as far as it can be told without loading weights: a recovered codebook is
    taken to fit the init weights when it names them (training compares the tables themselves)."""
    from songbloom.building.model import reads_codebook_recovery, resolve_run_sketch_tables
    from songbloom.sketch.artifact import recovered_codebook_for_run

    recovered = None
    if reads_codebook_recovery(rc):
        recovered = recovered_codebook_for_run(str(rc.sketch.codebook_path), quiet=True)
    return resolve_run_sketch_tables(rc, rc.init.source, recovered, None)


def meta_model(rc: RunConfig, ps: PlanSettings) -> SongBloomModel:
    """The run's generator on the meta device, with its training layout (adapters, trainable flags, dtypes)."""
    from songbloom.building.model import apply_training_layout

    with torch.device("meta"):
        model = SongBloomModel(copy.deepcopy(ps.songbloom.model))
    apply_training_layout(model, rc, rc.init.source, planned_sketch_tables(rc), log_level=logging.DEBUG)
    if ps.bf16_true:
        model.to(torch.bfloat16)
    return model


def narrow_meta_model(rc: RunConfig, ps: PlanSettings, width: int) -> SongBloomModel:
    """The run's generator on the meta device at ``width`` (heads of the run's head size), one LM and one DiT
    block: what :mod:`songbloom.plan.probe` measures blocks on when the run's width is above its cap."""
    import dataclasses

    from songbloom.building.model import apply_training_layout

    m = ps.songbloom.model
    cfg = dataclasses.replace(m, dim=width, num_heads=width // m.head_dim, lm_layers=1, diff_layers=1)
    with torch.device("meta"):
        model = SongBloomModel(cfg)
    apply_training_layout(model, rc, rc.init.source, planned_sketch_tables(rc), log_level=logging.DEBUG)
    if ps.bf16_true:
        model.to(torch.bfloat16)
    return model


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _block_bytes(model: SongBloomModel) -> int:
    blocks = [*model.ar_transformer.layers, *model.nar_dit.layers]
    return max((sum(_nbytes(p) for p in b.parameters()) for b in blocks), default=0)


def static_bytes(model: nn.Module) -> StaticBytes:
    params = [p for p in model.parameters()]
    trainable = [p for p in params if p.requires_grad]
    return StaticBytes(
        params=sum(_nbytes(p) for p in params) + sum(_nbytes(b) for b in model.buffers()),
        trainable=sum(_nbytes(p) for p in trainable),
        trainable_numel=sum(p.numel() for p in trainable),
        largest_trainable=max((_nbytes(p) for p in trainable), default=0),
        largest_block=_block_bytes(model) if isinstance(model, SongBloomModel) else 0,
        total_numel=sum(p.numel() for p in params),
    )
