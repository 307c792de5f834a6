"""Deprecated alias of songbloom.checkpoints (and neighbours); see docs/migration.md."""

from songbloom.utils.deprecation import warn_moved

warn_moved(__name__, "songbloom.checkpoints")
