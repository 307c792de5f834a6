"""Deprecated alias of songbloom.checkpoints.release_keys (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.release_keys import (  # noqa: E402, F401
    KeyComparison,
    assert_keys_match,
    compare_keys,
    load_reference_keys,
    shapes_of,
)
from songbloom.checkpoints.strict import format_mismatch_report, state_dict_mismatches  # noqa: E402, F401
from songbloom.utils.deprecation import warn_moved

warn_moved(__name__, "songbloom.checkpoints.release_keys")
