"""Deprecated alias of songbloom.checkpoints.fork_key_mapping (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.fork_key_mapping import (  # noqa: E402, F401
    FORK_DEFAULT_LORA_ALPHA,
    GENERATOR_PREFIX,
    LEGACY_VAE_PREFIX,
    VAE_PREFIX,
    MappingReport,
    MergedAdapter,
    map_fork_state_dict,
)
from songbloom.utils.atomic import atomic_write_json  # noqa: E402, F401
from songbloom.utils.deprecation import warn_moved

warn_moved(__name__, "songbloom.checkpoints.fork_key_mapping")
