"""Deprecated alias of songbloom.checkpoints.keys (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.formats.merged import CONFIG_FILE, GENERATOR_FILE, is_merged_export
from songbloom.checkpoints.formats.peft_adapter import ADAPTER_CONFIG, ADAPTER_WEIGHTS, is_adapter_dir
from songbloom.checkpoints.formats.training import TRAINING_CONFIG_KEY, is_training_checkpoint
from songbloom.utils.deprecation import warn_moved

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_WEIGHTS",
    "CONFIG_FILE",
    "GENERATOR_FILE",
    "TRAINING_CONFIG_KEY",
    "is_adapter_dir",
    "is_merged_export",
    "is_training_checkpoint",
]

warn_moved(__name__, "songbloom.checkpoints.keys")
