"""Deprecated alias of songbloom.checkpoints.fork_key_mapping (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.fork_key_mapping import (
    FORK_DEFAULT_LORA_ALPHA,
    GENERATOR_PREFIX,
    LEGACY_VAE_PREFIX,
    VAE_PREFIX,
    MappingReport,
    MergedAdapter,
    map_fork_state_dict,
)
from songbloom.utils.atomic import atomic_write_json
from songbloom.utils.deprecation import warn_moved

__all__ = [
    "FORK_DEFAULT_LORA_ALPHA",
    "GENERATOR_PREFIX",
    "LEGACY_VAE_PREFIX",
    "MappingReport",
    "MergedAdapter",
    "VAE_PREFIX",
    "atomic_write_json",
    "map_fork_state_dict",
]

warn_moved(__name__, "songbloom.checkpoints.fork_key_mapping")
