"""Run identity (stable dirs, changed configs refused) and checkpoint selection for auto-resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from songbloom.training.checkpointing import find_resume_checkpoint, step_checkpoints
from songbloom.training.run_dir import ConfigChangedError, config_hash, default_run_name, prepare_run_dir
from tests.training.conftest import TINY_CPU


def _cfg(lr: float = 1e-4, root: str = "/a") -> dict:
    return {
        "experiment_name": "demo",
        "paths": {"runs_dir": root},
        "training": {"optim": {"lr": lr}},
        "data": {"num_workers": 0, "batch_size": 2},
        "resume": "auto",
    }


def test_run_name_is_stable_and_ignores_operational_keys():
    a, b = _cfg(), _cfg(root="/elsewhere")
    b["data"]["num_workers"] = 4
    b["resume"] = "never"
    assert default_run_name(a) == default_run_name(b)
    assert default_run_name(a).startswith("demo-") and len(config_hash(a)) == 8
    assert default_run_name(_cfg(lr=3e-4)) != default_run_name(a)


def test_changed_config_is_refused_unless_allowed(tmp_path: Path):
    prepare_run_dir(tmp_path, "mine", _cfg(), allow_config_change=False)
    prepare_run_dir(tmp_path, "mine", _cfg(), allow_config_change=False)  # same config: fine
    with pytest.raises(ConfigChangedError, match=r"training\.optim\.lr: 0\.0001 -> 0\.0003"):
        prepare_run_dir(tmp_path, "mine", _cfg(lr=3e-4), allow_config_change=False)
    prepare_run_dir(tmp_path, "mine", _cfg(lr=3e-4), allow_config_change=True)
    assert list((tmp_path / "mine").glob("config.previous.*.json"))


def test_resume_skips_damaged_checkpoints(tmp_path: Path):
    ck = tmp_path / "checkpoints"
    ck.mkdir()
    torch.save({"global_step": 4}, ck / "step=0000004.ckpt")
    torch.save({"global_step": 8}, ck / "step=0000008.ckpt")
    (ck / "last.ckpt").write_bytes(b"truncated")  # e.g. a disk filled during a copy
    (ck / ".step=0000012.ckpt.tmp").write_bytes(b"partial")  # a save killed half-way is never picked
    assert find_resume_checkpoint(ck) == ck / "step=0000008.ckpt"
    torch.save({"global_step": 10}, tmp_path / "hpc_ckpt_1.ckpt")  # Lightning's SLURM requeue save
    assert find_resume_checkpoint(ck, hpc_dir=tmp_path) == tmp_path / "hpc_ckpt_1.ckpt"
    assert [s for s, _ in step_checkpoints(ck)] == [4, 8]
    assert find_resume_checkpoint(tmp_path / "nothing") is None


def test_retention_and_rerun_of_the_same_command(compose):
    from tests.training.conftest import run_flat

    overrides = [
        *TINY_CPU,
        "trainer.max_steps=4",
        "callbacks.checkpoint.every_n_steps=1",
        "callbacks.checkpoint.keep_last=2",
    ]
    first = run_flat(compose(overrides))
    ck = Path(first["run_dir"]) / "checkpoints"
    assert [s for s, _ in step_checkpoints(ck)] == [3, 4]
    # last.ckpt is an independent copy of the newest step file (same bytes, its own inode).
    assert (ck / "last.ckpt").read_bytes() == (ck / "step-0000004.ckpt").read_bytes()
    assert not (ck / "last.ckpt").samefile(ck / "step-0000004.ckpt")
    assert not list(ck.glob(".*"))
    again = run_flat(compose(overrides))  # the same command lands in the same dir: a finished run, nothing to do
    assert again["run_dir"] == first["run_dir"] and again["complete"] and again["_lit_module"] is None
    name = f"run_name={Path(first['run_dir']).name}"
    more = run_flat(compose([*overrides, "trainer.max_steps=5", name, "allow_config_change=true"]))  # work left
    assert more["run_dir"] == first["run_dir"] and more["resumed_from"].endswith("last.ckpt")
