"""Deprecated alias of songbloom.checkpoints.formats.fork (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.fork_file import looks_like_fork_checkpoint  # noqa: E402, F401
from songbloom.checkpoints.formats.fork import FORMAT_NAME  # noqa: E402, F401
from songbloom.checkpoints.registry import CheckpointFormat, LoadOptions, register_checkpoint_format  # noqa: E402, F401
from songbloom.utils.deprecation import warn_moved

warn_moved(__name__, "songbloom.checkpoints.formats.fork")
