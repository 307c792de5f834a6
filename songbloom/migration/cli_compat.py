"""Deprecated alias of songbloom.inference.fork_flags (and neighbours); see docs/migration.md."""

from songbloom.inference.fork_flags import FORK_LORA_FLAGS, fork_flag_notice
from songbloom.utils.deprecation import warn_moved

__all__ = [
    "FORK_LORA_FLAGS",
    "fork_flag_notice",
]

warn_moved(__name__, "songbloom.inference.fork_flags")
