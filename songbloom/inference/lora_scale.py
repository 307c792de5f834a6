"""``infer.py --lora-scale``: a checkpoint's LoRA adapters applied at any strength, without a merged export.

Training checkpoints with LoRA and PEFT adapter directories load with their adapters injected and unmerged, so
the strength is peft's adapter scale (only the LoRA deltas change; tensors trained in full are taken as trained:
they belong to the training shards' codebook). The ayutaz fork's checkpoints are merged while they load, so
there the strength scales the LoRA alpha of that merge. Formats without adapters (release, merged exports)
refuse a strength other than 1.
"""

from __future__ import annotations

import logging
from pathlib import Path

from songbloom.building.lora import set_lora_scale
from songbloom.checkpoints.fork_key_mapping import FORK_DEFAULT_LORA_ALPHA
from songbloom.checkpoints.formats.fork import FORMAT_NAME as FORK_FORMAT
from songbloom.checkpoints.registry import detect_checkpoint_format

logger = logging.getLogger(__name__)

def is_fork_checkpoint(path: str | Path | None) -> bool:
    if not path:
        return False
    try:
        return detect_checkpoint_format(path).name == FORK_FORMAT
    except (OSError, ValueError):
        return False


def fork_alpha(lora_alpha: float | None, scale: float) -> float | None:
    """The LoRA alpha that merges a fork checkpoint's adapters at ``scale`` x their strength."""
    if scale == 1.0:
        return lora_alpha
    return (FORK_DEFAULT_LORA_ALPHA if lora_alpha is None else float(lora_alpha)) * float(scale)


def apply_lora_scale(model, scale: float, source: str, merged_at_load: bool = False) -> int:
    """Set every adapter of ``model`` to ``scale``; refuse a strength for a model that has none."""
    scale = float(scale)
    if scale != scale:
        raise ValueError("--lora-scale is NaN")
    if merged_at_load:
        logger.info("LoRA strength %g: %s is a fork checkpoint, merged at load with alpha x %g", scale, source, scale)
        return 0
    n = set_lora_scale(model, scale)
    if n == 0 and scale != 1.0:
        raise ValueError(
            f"--lora-scale {scale:g}: {source} carries no LoRA adapters (a release or merged export is already "
            "merged); pass the training checkpoint (.ckpt) or the PEFT adapter directory instead"
        )
    if n:
        logger.info("LoRA strength %g on %d adapted layers of %s (fully trained tensors as trained)", scale, n, source)
    return n
