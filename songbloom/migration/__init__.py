"""Deprecated alias of songbloom.checkpoints.fork_key_mapping (and neighbours); see docs/migration.md."""

from songbloom.checkpoints import fork_file  # noqa: E402, F401
from songbloom.checkpoints.fork_file import (  # noqa: E402, F401
    ForkCheckpoint,
    looks_like_fork_checkpoint,
    read_fork_checkpoint,
)
from songbloom.checkpoints.fork_key_mapping import (  # noqa: E402, F401
    FORK_DEFAULT_LORA_ALPHA,
    MappingReport,
    map_fork_state_dict,
)
from songbloom.utils.deprecation import warn_moved

warn_moved(__name__, "songbloom.checkpoints.fork_key_mapping")
