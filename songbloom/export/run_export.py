"""Deprecated alias of songbloom.training.export (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.metadata import export_metadata  # noqa: E402, F401
from songbloom.config.model import SongBloomConfig  # noqa: E402, F401
from songbloom.training.export import export_generator, export_run, trained_copy  # noqa: E402, F401
from songbloom.utils.deprecation import warn_moved

warn_moved(__name__, "songbloom.training.export")
