"""Deprecated alias of songbloom.checkpoints.formats (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.formats.peft_adapter import load_adapter_base  # noqa: E402, F401
from songbloom.checkpoints.registry import (  # noqa: E402, F401
    CheckpointFormat,
    LoadOptions,
    load_checkpoint,
    register_checkpoint_format,
)
from songbloom.utils.deprecation import warn_moved

warn_moved(__name__, "songbloom.checkpoints.formats")
