"""The import contracts in pyproject.toml ([tool.importlinter]) hold, and they do catch an upward import.

``lint-imports`` is the one from the interpreter's environment (the dev extra pins import-linter); it only parses
the source, so each run takes well under a second.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    assert LINT_IMPORTS.is_file(), f"{LINT_IMPORTS} missing: install the dev extra (pip install -e '.[dev]')"
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(cwd / "pyproject.toml")],
        cwd=cwd,
        # The package under ``cwd`` must win over the installed (editable) one.
        env={**os.environ, "PYTHONPATH": str(cwd)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_contracts_hold_on_the_package():
    proc = _lint_imports(REPO_ROOT)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout, proc.stdout[-3000:]


def test_an_upward_import_is_caught(tmp_path: Path):
    shutil.copytree(REPO_ROOT / "songbloom", tmp_path / "songbloom", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "songbloom" / "models" / "upward_probe.py").write_text(
        '"""A deliberate layer violation: models must not import training."""\n\n'
        "from songbloom.training import lit_module  # noqa: F401\n"
    )
    proc = _lint_imports(tmp_path)
    assert proc.returncode != 0, proc.stdout[-3000:]
    out = proc.stdout
    assert "songbloom.models.upward_probe -> songbloom.training.lit_module" in out, out[-5000:]
    assert "songbloom layers BROKEN" in out, out[-3000:]
    assert "models do not import training BROKEN" in out, out[-3000:]
