"""Adapter-only checkpoints load from any directory: the base's resolved path and fingerprint are recorded at
training start; a base that moved or changed since is named as such, with ``--base-ckpt`` as the fix.

The run is started in its project folder with a relative ``init.release_dir`` (as a user types it), then the
checkpoint is loaded from another folder.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from songbloom.checkpoints.registry import load_checkpoint
from songbloom.checkpoints.release_state import load_release_state_dict
from tests.checkpoints.formats.conftest import RELEASE, write_tiny_release_with_vae
from tests.training.conftest import TINY_CPU, compose_config, run_flat


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A one-step ``japanese_lora`` run (adapter-only checkpoints) started in ``project`` on ``base_release``."""
    root = tmp_path_factory.mktemp("project")
    write_tiny_release_with_vae(root / "base_release")
    (root / "codebook.safetensors").write_bytes(b"")  # declared only: synthetic data stands in for the shards
    before = os.getcwd()
    os.chdir(root)
    try:
        cfg = compose_config(
            [
                f"paths.root_dir={root}",
                "experiment=japanese_lora",
                *TINY_CPU,
                "init.release_dir=base_release",
                "sketch.codebook_path=codebook.safetensors",
                "trainer.max_steps=1",
                "export.enabled=false",
                "run_name=lora",
            ]
        )
        run_flat(cfg)
    finally:
        os.chdir(before)
    return root


def _ckpt(project: Path) -> Path:
    return project / "outputs" / "runs" / "lora" / "checkpoints" / "last.ckpt"


def _load_error(path: Path, **kw) -> Exception | None:
    try:
        load_checkpoint(path, **kw)
    except (OSError, ValueError) as e:
        return e
    return None


def test_adapter_only_checkpoint_loads_from_another_directory(project: Path, tmp_path: Path, monkeypatch):
    ckpt = _ckpt(project)
    assert "songbloom_frozen_base_dropped" in torch.load(ckpt, weights_only=True, mmap=True)
    reference = load_checkpoint(ckpt, base_path=project / "base_release")
    monkeypatch.chdir(tmp_path)
    error = _load_error(ckpt)
    assert error is None, f"the adapter-only checkpoint did not load from another directory: {error}"
    got = load_checkpoint(ckpt).model.state_dict()
    want = reference.model.state_dict()
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_moved_base_is_named_with_the_base_ckpt_fix(project: Path, tmp_path: Path, monkeypatch):
    ckpt = _ckpt(project)
    moved = project / "base_moved"
    (project / "base_release").rename(moved)
    try:
        monkeypatch.chdir(tmp_path)
        error = _load_error(ckpt)
        assert error is not None and "moved" in str(error) and "--base-ckpt" in str(error), error
        assert str((project / "base_release" / f"{RELEASE}.pt").resolve()) in str(error)
        assert _load_error(ckpt, base_path=moved) is None  # the fix the message names works
    finally:
        moved.rename(project / "base_release")


def test_changed_base_at_the_same_path_is_detected(project: Path, tmp_path: Path, monkeypatch):
    from songbloom.checkpoints.release_state import save_release_checkpoint, split_release_state_dict

    pt = project / "base_release" / f"{RELEASE}.pt"
    original = tmp_path / "original.pt"
    shutil.copy2(pt, original)
    try:
        gen, vae, _ = split_release_state_dict(load_release_state_dict(pt), require_vae=False)
        gen = {k: v + 0.01 if v.is_floating_point() else v for k, v in gen.items()}  # another base, same keys
        save_release_checkpoint(pt, gen, vae)
        monkeypatch.chdir(project)  # where the run started: the relative init.release_dir finds the changed file
        error = _load_error(_ckpt(project))
        assert error is not None and "changed since training" in str(error) and "--base-ckpt" in str(error), error
    finally:
        shutil.copy2(original, pt)
