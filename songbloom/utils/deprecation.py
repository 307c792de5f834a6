"""Old import paths that moved keep working for a while, each with one warning naming the new path."""

from __future__ import annotations

import warnings


def warn_moved(old: str, new: str) -> None:
    """Warn once per import that module ``old`` moved to ``new`` (see docs/migration.md for the table)."""
    warnings.warn(
        f"{old} is deprecated: import from {new} instead (see docs/migration.md); the old path will be removed",
        DeprecationWarning,
        stacklevel=3,
    )
