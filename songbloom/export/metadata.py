"""Deprecated alias of songbloom.checkpoints.metadata (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.metadata import (  # noqa: E402, F401
    EXPORT_FORMAT_VERSION,
    checkpoint_licences,
    export_metadata,
    warn_non_commercial,
)
from songbloom.licences import warn_if_non_commercial  # noqa: E402, F401
from songbloom.utils.deprecation import warn_moved

warn_moved(__name__, "songbloom.checkpoints.metadata")
