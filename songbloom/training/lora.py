"""Deprecated alias of songbloom.building.lora (and neighbours); see docs/migration.md."""

from songbloom.building.lora import (  # noqa: E402, F401
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

warn_moved(__name__, "songbloom.building.lora")
