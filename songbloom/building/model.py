"""Model building from a run config: the generator's geometry, its adapters and which tensors train.

Everything here works on a config and a module, never on files: the weights a run starts from are read by
:mod:`songbloom.checkpoints.init_weights`, which calls these steps around its strict load. Training and the
training-checkpoint reader rebuild a model through the same code path, so a checkpoint's layout always
matches the one that wrote it.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import torch

from songbloom.building.lora import LoRASettings, apply_lora, cast_frozen_linears
from songbloom.building.sketch_tables import (
    SKETCH_TABLE_KEYS,
    RecoveredCodebook,
    SketchTablesLayout,
    resolve_sketch_tables,
    sketch_tables_sha256,
)
from songbloom.building.trainable import declared_full_sets, mark_full_sets
from songbloom.config import SongBloomConfig
from songbloom.config.run import RunConfig
from songbloom.models.songbloom import SongBloomModel

logger = logging.getLogger(__name__)


@dataclass
class InitResult:
    """The initial weights of a run, already read: the config they fix and their generator state dict."""

    config: SongBloomConfig
    state_dict: dict[str, torch.Tensor] | None
    source: str  # "scratch" | "release" | "export"
    description: str


def preset_config(rc: RunConfig) -> SongBloomConfig:
    """The model preset the run config names, with its overrides."""
    return SongBloomConfig.from_name(rc.model.preset, **dict(rc.model.overrides or {}))


def generator_config(rc: RunConfig, init: InitResult) -> SongBloomConfig:
    """The config of the run's generator: the init weights fix the geometry, overrides only training knobs."""
    sb_cfg = init.config
    if init.source != "scratch" and rc.model.overrides:
        sb_cfg.model = dataclasses.replace(sb_cfg.model, **dict(rc.model.overrides))
    return sb_cfg


def layout_lora_settings(rc: RunConfig, sketch_tables: SketchTablesLayout | None = None) -> LoRASettings:
    """The run's LoRA settings with what its sketch tables layout adds (adapters on the classifier for ``lora``):
    one definition for training, the checkpoint rebuild and the adapter export."""
    lora = LoRASettings.from_run(rc.lora)
    if lora.enabled and sketch_tables is not None and sketch_tables.mode == "lora":
        lora = dataclasses.replace(lora, sketch_classifier=True)
    return lora


def init_name(rc: RunConfig) -> str:
    """How the run names its init weights (a release name or an export path), for messages and predictions."""
    if rc.init.source == "release":
        return str(rc.init.release_name)
    if rc.init.source == "export":
        return str(rc.init.export_path)
    return "scratch (random init)"


def reads_codebook_recovery(rc: RunConfig) -> bool:
    """Whether the run's codebook can change the sketch tables layout (so the caller should read its recovery
    block): a LoRA run with ``trainable.sketch_embedding: auto`` and a codebook."""
    return bool(rc.sketch.codebook_path) and rc.trainable.sketch_embedding == "auto" and rc.lora.enabled


def resolve_run_sketch_tables(
    rc: RunConfig, source: str, recovered: RecoveredCodebook | None, model: SongBloomModel | None
) -> SketchTablesLayout | None:
    """The sketch tables layout of a LoRA run (None without LoRA: then every tensor trains).

    ``model`` holds the init weights, whose tables are hashed when ``recovered`` is given; None (a model on the
    meta device) judges by the init's name instead.
    """
    if not LoRASettings.from_run(rc.lora).enabled:
        return None
    init_sha = sketch_tables_sha256(model) if recovered is not None and model is not None else None
    return resolve_sketch_tables(
        rc.trainable.sketch_embedding,
        rc.trainable.recovered_tables,
        source=source,
        new_codebook=bool(rc.sketch.codebook_path),
        recovered=recovered,
        init_sha256=init_sha,
        init_name=init_name(rc),
    )


def apply_training_layout(
    model: SongBloomModel,
    rc: RunConfig,
    source: str,
    sketch_tables: SketchTablesLayout | None = None,
    log_level: int = logging.INFO,
) -> dict[str, list[str]]:
    """LoRA adapters and the trainable flags the run config declares (also rebuilds a checkpoint's layout).

    ``sketch_tables``: the resolved layout of the sketch tables (:func:`resolve_run_sketch_tables`, or the one a
    checkpoint recorded); None keeps the rule of runs from before recovered codebooks. ``log_level``: what the
    layout lines are logged at; the memory plan's meta-device builds pass DEBUG, so a run states its layout once.
    """
    lora = layout_lora_settings(rc, sketch_tables)
    report: dict[str, list[str]] = {}
    if not lora.enabled:
        report["fully_trained"] = [n for n, p in model.named_parameters() if p.requires_grad]
        return report
    report["lora_modules"] = apply_lora(model, lora, log_level)
    sets = declared_full_sets(
        dataclasses.asdict(rc.trainable),
        source=source,
        new_codebook=bool(rc.sketch.codebook_path),
        language=rc.text.language,
        sketch_tables=sketch_tables,
    )
    full = mark_full_sets(model, sets, rc.trainable.extra_regex)
    report["full_sets"] = sets
    report["fully_trained"] = full
    keep: tuple[str, ...] = ()
    if sketch_tables is not None:
        logger.log(log_level, "sketch tables: %s (%s)", sketch_tables.mode, sketch_tables.reason)
        if sketch_tables.mode == "low_lr":
            report["low_lr"] = list(SKETCH_TABLE_KEYS)
        if sketch_tables.kept and sketch_tables.recorded_sha256 is not None:
            keep = SKETCH_TABLE_KEYS  # base tables of a recovered codebook: an export gives them back bit for bit
    logger.log(log_level, "trained in full besides the adapters: %s (%d tensors)", sets or "nothing", len(full))
    if lora.base_dtype in ("bf16", "bfloat16"):
        n = cast_frozen_linears(model, torch.bfloat16, keep=keep)
        logger.log(log_level, "frozen base: %d Linear tensors held in bf16", n)
    elif lora.base_dtype not in (None, "fp32", "float32"):
        raise ValueError(f"lora.base_dtype={lora.base_dtype!r}: choose null or bf16")
    return report


def finish_training_model(
    model: SongBloomModel, rc: RunConfig, init: InitResult, sketch_tables: SketchTablesLayout | None = None
) -> dict[str, list[str]]:
    """Gradient checkpointing and the training layout on a model that holds its initial weights."""
    model.set_gradient_checkpointing(rc.training.gradient_checkpointing)
    report = apply_training_layout(model, rc, init.source, sketch_tables)
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info(
        "model: %.2f M parameters, %.3f M trainable (init: %s)",
        model.num_parameters() / 1e6,
        n_train / 1e6,
        init.description,
    )
    return report
