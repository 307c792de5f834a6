"""Deprecated alias of songbloom.checkpoints.formats (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.formats.peft_adapter import load_adapter_base
from songbloom.checkpoints.registry import CheckpointFormat, LoadOptions, load_checkpoint, register_checkpoint_format
from songbloom.utils.deprecation import warn_moved

__all__ = [
    "CheckpointFormat",
    "LoadOptions",
    "load_adapter_base",
    "load_checkpoint",
    "register_checkpoint_format",
]

warn_moved(__name__, "songbloom.checkpoints.formats")
