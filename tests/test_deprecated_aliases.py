"""Every old import path of a moved module still works, warns with its new path, and has a row in the migration page."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _aliases() -> dict[str, str]:
    """Module name -> new path named in its ``warn_moved`` call, for every alias module in the package."""
    out = {}
    for path in sorted((REPO / "songbloom").rglob("*.py")):
        m = re.search(r'warn_moved\(\s*__name__,\s*"([^"]+)"', path.read_text(encoding="utf-8"))
        if m:
            mod = ".".join(path.relative_to(REPO).with_suffix("").parts)
            out[mod.removesuffix(".__init__")] = m.group(1)
    return out


def test_there_are_aliases_for_the_moved_packages():
    aliases = _aliases()
    for old in ("songbloom.checkpoint", "songbloom.export.merged", "songbloom.migration.fork_loader",
                "songbloom.release.files", "songbloom.inference.checkpoints", "songbloom.training.lora"):
        assert old in aliases


def test_each_alias_imports_warns_and_is_documented():
    aliases = _aliases()
    migration = (REPO / "docs" / "migration.md").read_text(encoding="utf-8")
    code = (
        "import importlib, json, sys, warnings\n"
        "out = {}\n"
        "for name in sys.argv[1:]:\n"
        "    with warnings.catch_warnings(record=True) as w:\n"
        "        warnings.simplefilter('always')\n"
        "        importlib.import_module(name)\n"
        "    out[name] = [str(x.message) for x in w if issubclass(x.category, DeprecationWarning)]\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, *aliases], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    import json

    warned = json.loads(proc.stdout.strip().splitlines()[-1])
    for old, new in aliases.items():
        assert any(old in msg and new in msg for msg in warned[old]), (old, warned[old])
        assert f"| `{old}` | `" in migration, f"docs/migration.md has no row for {old}"
