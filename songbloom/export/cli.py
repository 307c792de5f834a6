"""Deprecated alias of songbloom.cli.export (and neighbours); see docs/migration.md."""

from songbloom.cli.export import FORMATS, build_parser, export_command, main, merge_command  # noqa: E402, F401
from songbloom.utils.deprecation import warn_moved

warn_moved(__name__, "songbloom.cli.export")
