"""Deprecated alias of songbloom.checkpoints.formats.fork (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.fork_file import looks_like_fork_checkpoint
from songbloom.checkpoints.formats.fork import FORMAT_NAME
from songbloom.checkpoints.registry import CheckpointFormat, LoadOptions, register_checkpoint_format
from songbloom.utils.deprecation import warn_moved

__all__ = [
    "CheckpointFormat",
    "FORMAT_NAME",
    "LoadOptions",
    "looks_like_fork_checkpoint",
    "register_checkpoint_format",
]

warn_moved(__name__, "songbloom.checkpoints.formats.fork")
