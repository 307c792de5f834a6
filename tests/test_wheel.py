"""The built wheel is complete: it holds the package data, and every console script runs from outside the repo.

The wheel is built from a copy of the sources (so no ``build/`` or ``*.egg-info`` lands in the checkout) with the
interpreter's own pip and setuptools (``--no-build-isolation``: nothing is downloaded). It is installed without
dependencies into a fresh venv; the dependencies (torch, hydra, ...) come from this interpreter's site-packages
through a ``.pth`` line. A plain path line in a ``.pth`` does not process the ``.pth`` files of that directory, so
the editable install of the checkout stays invisible there: the test checks that ``songbloom`` is imported from
the new venv, then runs each ``[project.scripts]`` entry with ``--help`` in an empty directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
SCRIPTS = sorted(PYPROJECT["project"]["scripts"])


def _env() -> dict[str, str]:
    """No PYTHONPATH (the tests run with the checkout on it) and no user site: only the venv decides."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _run(cmd: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO_ROOT / "songbloom", src / "songbloom", symlinks=True, ignore=ignore)  # conf stays a link
    shutil.copytree(REPO_ROOT / "conf", src / "conf", ignore=ignore)
    out = tmp_path_factory.mktemp("dist")
    proc = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                 str(src)], cwd=src)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (whl,) = out.glob("songbloom-*.whl")
    return whl


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("venv")
    proc = _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(root)], cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    python = root / "bin" / "python"
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=root)
    # This interpreter's site-packages (torch, hydra, ...), not the repo: a plain path line, no .pth processing.
    (Path(site.stdout.strip()) / "songbloom_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    proc = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--ignore-installed",
                 "-q", str(wheel)], cwd=root)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root


def test_wheel_holds_the_package_data(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "songbloom/text/vocab_g2p.yaml" in names, "the lyric vocabulary YAML is missing"
    text_data = [p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "songbloom/text/data").iterdir()
                 if p.suffix in (".txt", ".tsv")]
    assert text_data and not [n for n in text_data if n not in names], "text data files missing from the wheel"
    conf_dir = REPO_ROOT / "conf"
    conf = [f"songbloom/conf/{p.relative_to(conf_dir).as_posix()}" for p in conf_dir.rglob("*.yaml")]
    missing = sorted(n for n in conf if n not in names)
    assert "songbloom/conf/train.yaml" in conf and not missing, f"conf files missing from the wheel: {missing}"
    assert not [n for n in names if n.startswith(("conf/", "tests/", "scripts/"))], "files outside the package"
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert all(f"{s} = " in text for s in SCRIPTS), text


def test_songbloom_comes_from_the_wheel(venv: Path, tmp_path: Path):
    proc = _run([str(venv / "bin" / "python"), "-c", "import songbloom, torch; print(songbloom.__file__)"],
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert Path(proc.stdout.strip()).resolve().is_relative_to(venv.resolve()), proc.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_console_script_help(venv: Path, tmp_path: Path, script: str):
    exe = venv / "bin" / script
    assert exe.is_file(), f"{script} was not installed"
    proc = _run([str(exe), "--help"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    if script == "songbloom-train":  # Hydra's help: the config groups of the shipped conf/
        assert "== Configuration groups ==" in proc.stdout and "experiment: " in proc.stdout, proc.stdout[-3000:]
    else:
        assert proc.stdout.startswith("usage: "), proc.stdout[-3000:]
