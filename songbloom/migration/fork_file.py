"""Deprecated alias of songbloom.checkpoints.fork_file (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.fork_file import ForkCheckpoint, looks_like_fork_checkpoint, read_fork_checkpoint
from songbloom.checkpoints.safe_load import torch_load_safely
from songbloom.utils.deprecation import warn_moved

__all__ = [
    "ForkCheckpoint",
    "looks_like_fork_checkpoint",
    "read_fork_checkpoint",
    "torch_load_safely",
]

warn_moved(__name__, "songbloom.checkpoints.fork_file")
