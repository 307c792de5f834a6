"""The closing summary and exit code every batch command shares (converters, evaluate).

The summary counts what landed and what was skipped, grouped by why; the exit code is 1 when nothing landed,
or, with ``--strict``, when anything was skipped.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path


def add_strict_flag(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--strict", action="store_true", help="exit 1 when any item was skipped (default: only when none landed)"
    )


def manifest_rows(path: str | Path) -> int:
    """Rows of a JSONL manifest just written (0 when it is missing)."""
    path = Path(path)
    if not path.is_file():
        return 0
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def finish_batch(landed: int, skipped: Sequence[object], *, strict: bool, what: str, where: str | Path) -> int:
    """Print ``landed N, skipped M`` with the reasons counted by kind; the exit code (see the module docstring)."""
    kinds = Counter(str(getattr(s, "kind", "skipped")) for s in skipped)
    why = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    print(f"summary: {landed} {what} landed in {where}; {len(skipped)} skipped" + (f" ({why})" if why else ""),
          file=sys.stderr)
    for s in skipped:
        print(f"  SKIPPED {s}", file=sys.stderr)
    if not landed:
        print(f"error: no {what} landed: fix the inputs listed above (or the paths given) and run again",
              file=sys.stderr)
        return 1
    return 1 if strict and skipped else 0
