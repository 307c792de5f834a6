"""Deprecated alias of songbloom.cli.export (and neighbours); see docs/migration.md."""

from songbloom.cli.export import FORMATS, build_parser, export_command, main, merge_command
from songbloom.utils.deprecation import warn_moved

__all__ = [
    "FORMATS",
    "build_parser",
    "export_command",
    "main",
    "merge_command",
]

warn_moved(__name__, "songbloom.cli.export")
