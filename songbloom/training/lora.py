"""Deprecated alias of songbloom.building.lora (and neighbours); see docs/migration.md."""

from songbloom.building.lora import (
    PRESETS,
    TARGET_GROUPS,
    LoRASettings,
    adapter_state_dict,
    apply_lora,
    cast_frozen_linears,
    is_adapter_param,
    is_lora_layer,
    merge_lora,
    names_in,
    peft_lora_config,
)
from songbloom.utils.deprecation import warn_moved

__all__ = [
    "LoRASettings",
    "PRESETS",
    "TARGET_GROUPS",
    "adapter_state_dict",
    "apply_lora",
    "cast_frozen_linears",
    "is_adapter_param",
    "is_lora_layer",
    "merge_lora",
    "names_in",
    "peft_lora_config",
]

warn_moved(__name__, "songbloom.building.lora")
