"""Deprecated alias of songbloom.checkpoints.keys (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.formats.merged import CONFIG_FILE, GENERATOR_FILE, is_merged_export  # noqa: E402, F401
from songbloom.checkpoints.formats.peft_adapter import (  # noqa: E402, F401
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    is_adapter_dir,
)
from songbloom.checkpoints.formats.training import TRAINING_CONFIG_KEY, is_training_checkpoint  # noqa: E402, F401
from songbloom.utils.deprecation import warn_moved

warn_moved(__name__, "songbloom.checkpoints.keys")
