"""Deprecated alias of songbloom.checkpoints.release_keys (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.release_keys import (
    KeyComparison,
    assert_keys_match,
    compare_keys,
    load_reference_keys,
    shapes_of,
)
from songbloom.checkpoints.strict import format_mismatch_report, state_dict_mismatches
from songbloom.utils.deprecation import warn_moved

__all__ = [
    "KeyComparison",
    "assert_keys_match",
    "compare_keys",
    "format_mismatch_report",
    "load_reference_keys",
    "shapes_of",
    "state_dict_mismatches",
]

warn_moved(__name__, "songbloom.checkpoints.release_keys")
