"""Deprecated alias of songbloom.training.export (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.metadata import export_metadata
from songbloom.config.model import SongBloomConfig
from songbloom.training.export import export_generator, export_run, trained_copy
from songbloom.utils.deprecation import warn_moved

__all__ = [
    "SongBloomConfig",
    "export_generator",
    "export_metadata",
    "export_run",
    "trained_copy",
]

warn_moved(__name__, "songbloom.training.export")
