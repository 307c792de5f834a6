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


def apply_training_layout(model: SongBloomModel, rc: RunConfig, source: str) -> dict[str, list[str]]:
    """LoRA adapters and the trainable flags the run config declares (also rebuilds a checkpoint's layout)."""
    lora = LoRASettings.from_run(rc.lora)
    report: dict[str, list[str]] = {}
    if not lora.enabled:
        report["fully_trained"] = [n for n, p in model.named_parameters() if p.requires_grad]
        return report
    report["lora_modules"] = apply_lora(model, lora)
    sets = declared_full_sets(
        dataclasses.asdict(rc.trainable),
        source=source,
        new_codebook=bool(rc.sketch.codebook_path),
        language=rc.text.language,
    )
    full = mark_full_sets(model, sets, rc.trainable.extra_regex)
    report["full_sets"] = sets
    report["fully_trained"] = full
    logger.info("trained in full besides the adapters: %s (%d tensors)", sets or "nothing", len(full))
    if lora.base_dtype in ("bf16", "bfloat16"):
        n = cast_frozen_linears(model, torch.bfloat16)
        logger.info("frozen base: %d Linear tensors held in bf16", n)
    elif lora.base_dtype not in (None, "fp32", "float32"):
        raise ValueError(f"lora.base_dtype={lora.base_dtype!r}: choose null or bf16")
    return report


def finish_training_model(model: SongBloomModel, rc: RunConfig, init: InitResult) -> dict[str, list[str]]:
    """Gradient checkpointing and the training layout on a model that holds its initial weights."""
    model.set_gradient_checkpointing(rc.training.gradient_checkpointing)
    report = apply_training_layout(model, rc, init.source)
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info(
        "model: %.2f M parameters, %.3f M trainable (init: %s)",
        model.num_parameters() / 1e6,
        n_train / 1e6,
        init.description,
    )
    return report
