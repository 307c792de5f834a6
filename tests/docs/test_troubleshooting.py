"""docs/troubleshooting.md quotes error messages: each quote must still be in the code, each error class named."""

from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGE = REPO_ROOT / "docs" / "troubleshooting.md"
SOURCES = [*sorted((REPO_ROOT / "songbloom").rglob("*.py")), *sorted((REPO_ROOT / "scripts").rglob("*.py"))]
SOURCES += [REPO_ROOT / "train.py", REPO_ROOT / "infer.py"]
HEADING = re.compile(r"^### `([^`]+)`", re.M)


def _code() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in SOURCES)


def quoted_messages() -> list[str]:
    return HEADING.findall(PAGE.read_text(encoding="utf-8"))


def test_page_quotes_enough_messages():
    assert len(quoted_messages()) >= 30


def test_every_quoted_message_is_still_raised_somewhere():
    code = _code()
    gone = [m for m in quoted_messages() if m not in code]
    assert not gone, (
        "docs/troubleshooting.md quotes messages that are no longer in the code (update or remove them):\n"
        + "\n".join(gone)
    )


def test_every_error_class_of_ours_is_explained():
    classes = set(re.findall(r"^class (\w+(?:Error|Mismatch))\(", _code(), re.M))
    page = PAGE.read_text(encoding="utf-8")
    missing = sorted(c for c in classes if c not in page)
    assert not missing, f"error classes raised by our tools but not on docs/troubleshooting.md: {missing}"


def test_every_catalogue_message_is_on_the_page_with_its_fix():
    """tests/faults/test_bad_input_catalogue.py: each cause's message and its fix appear in one row of the page."""
    from tests.faults.test_bad_input_catalogue import CATALOGUE

    rows = [line for line in PAGE.read_text(encoding="utf-8").splitlines() if line.startswith("| `")]
    missing = [c.id for c in CATALOGUE if not any(f"`{c.message}`" in r and c.fix in r for r in rows)]
    assert not missing, f"catalogue causes whose message and fix are not on docs/troubleshooting.md: {missing}"
