"""Deprecated alias of songbloom.config.safe_eval (and neighbours); see docs/migration.md."""

from songbloom.config.safe_eval import safe_arithmetic_eval  # noqa: E402, F401
from songbloom.utils.deprecation import warn_moved

warn_moved(__name__, "songbloom.config.safe_eval")
