"""Deprecated alias of songbloom.checkpoints.registry (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.bundle import release_yaml_candidates as _yaml_candidates  # noqa: E402, F401
from songbloom.checkpoints.formats.release import WEIGHT_SUFFIXES  # noqa: E402, F401
from songbloom.checkpoints.registry import (  # noqa: E402, F401
    CheckpointFormat,
    LoadOptions,
    checkpoint_formats,
    detect_checkpoint_format,
    load_checkpoint,
    register_checkpoint_format,
)
from songbloom.utils.deprecation import warn_moved

warn_moved(__name__, "songbloom.checkpoints.registry")
