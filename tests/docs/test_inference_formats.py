"""docs/inference.md lists exactly the checkpoint formats that ``infer.py --ckpt-path`` can load."""

from __future__ import annotations

import re
from pathlib import Path

from songbloom.inference import checkpoints

PAGE = Path(__file__).resolve().parents[2] / "docs" / "inference.md"


def test_documented_formats_match_the_registry():
    text = PAGE.read_text(encoding="utf-8")
    section = text[text.index("## Checkpoint formats") : text.index("## Python API")]
    documented = set(re.findall(r"^- `(\w+)`:", section, re.M))
    registered = {fmt.name for fmt in checkpoints.checkpoint_formats()}
    assert documented == registered, f"docs/inference.md lists {sorted(documented)}, the registry {sorted(registered)}"
