"""Deprecated alias of songbloom.checkpoints.fork_key_mapping (and neighbours); see docs/migration.md."""

from songbloom.checkpoints import fork_file
from songbloom.checkpoints.fork_file import ForkCheckpoint, looks_like_fork_checkpoint, read_fork_checkpoint
from songbloom.checkpoints.fork_key_mapping import FORK_DEFAULT_LORA_ALPHA, MappingReport, map_fork_state_dict
from songbloom.utils.deprecation import warn_moved

__all__ = [
    "FORK_DEFAULT_LORA_ALPHA",
    "ForkCheckpoint",
    "MappingReport",
    "fork_file",
    "looks_like_fork_checkpoint",
    "map_fork_state_dict",
    "read_fork_checkpoint",
]

warn_moved(__name__, "songbloom.checkpoints.fork_key_mapping")
