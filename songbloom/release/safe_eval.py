"""Deprecated alias of songbloom.config.safe_eval (and neighbours); see docs/migration.md."""

from songbloom.config.safe_eval import safe_arithmetic_eval
from songbloom.utils.deprecation import warn_moved

__all__ = [
    "safe_arithmetic_eval",
]

warn_moved(__name__, "songbloom.config.safe_eval")
