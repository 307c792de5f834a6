"""Deprecated alias of songbloom.checkpoints.registry (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.bundle import load_release
from songbloom.checkpoints.bundle import release_yaml_candidates as _yaml_candidates
from songbloom.checkpoints.formats.release import WEIGHT_SUFFIXES
from songbloom.checkpoints.registry import (
    CheckpointFormat,
    LoadOptions,
    checkpoint_formats,
    detect_checkpoint_format,
    load_checkpoint,
    register_checkpoint_format,
)
from songbloom.utils.deprecation import warn_moved

__all__ = [
    "CheckpointFormat",
    "LoadOptions",
    "WEIGHT_SUFFIXES",
    "_yaml_candidates",
    "checkpoint_formats",
    "detect_checkpoint_format",
    "load_checkpoint",
    "load_release",
    "register_checkpoint_format",
]

warn_moved(__name__, "songbloom.checkpoints.registry")
