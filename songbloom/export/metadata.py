"""Deprecated alias of songbloom.checkpoints.metadata (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.metadata import (
    EXPORT_FORMAT_VERSION,
    checkpoint_licences,
    export_metadata,
    warn_non_commercial,
)
from songbloom.licences import warn_if_non_commercial
from songbloom.utils.deprecation import warn_moved

__all__ = [
    "EXPORT_FORMAT_VERSION",
    "checkpoint_licences",
    "export_metadata",
    "warn_if_non_commercial",
    "warn_non_commercial",
]

warn_moved(__name__, "songbloom.checkpoints.metadata")
