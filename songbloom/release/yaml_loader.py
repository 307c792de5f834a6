"""Deprecated alias of songbloom.config.release_yaml (and neighbours); see docs/migration.md."""

from songbloom.config.release_yaml import (
    MODEL_DIR_PLACEHOLDER,
    PRIVATE_RESOLVER_PREFIX,
    RELEASE_RESOLVERS,
    load_release_yaml,
)
from songbloom.config.safe_eval import safe_arithmetic_eval
from songbloom.utils.deprecation import warn_moved

__all__ = [
    "MODEL_DIR_PLACEHOLDER",
    "PRIVATE_RESOLVER_PREFIX",
    "RELEASE_RESOLVERS",
    "load_release_yaml",
    "safe_arithmetic_eval",
]

warn_moved(__name__, "songbloom.config.release_yaml")
