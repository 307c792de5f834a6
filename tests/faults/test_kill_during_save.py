"""SIGKILL a training run while a step checkpoint is half written: the previous checkpoint survives, loads,
and the automatic resume continues from it to the end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from songbloom.checkpoints.formats.training import load_training_checkpoint
from songbloom.checkpoints.registry import load_checkpoint
from songbloom.training.callbacks import read_step_metrics
from songbloom.training.checkpointing import find_resume_checkpoint
from tests.faults.injection import FAULT
from tests.training.conftest import REPO_ROOT, TINY_CPU, compose_config, run_flat

N_STEPS = 6
EVERY = 2
KILL_WHILE_SAVING = 4


def _overrides(root: Path) -> list[str]:
    return [
        f"paths.root_dir={root}",
        *TINY_CPU,
        "data.num_songs=8",
        f"trainer.max_steps={N_STEPS}",
        f"callbacks.checkpoint.every_n_steps={EVERY}",
        "callbacks.checkpoint.keep_last=3",
        "run_name=killed",
        "demo.enabled=true",  # the demo's VAE is known, so the run-end export includes the release layout
    ]


def test_kill_during_checkpoint_save_keeps_the_previous_one(tmp_path: Path):
    kill = [FAULT, f"+callbacks.fault.sigkill_during_save_step={KILL_WHILE_SAVING}"]
    cmd = [sys.executable, "train.py", *_overrides(tmp_path), *kill]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]

    run_dir = tmp_path / "outputs" / "runs" / "killed"
    ckpt_dir = run_dir / "checkpoints"
    partial = ckpt_dir / f".step-{KILL_WHILE_SAVING:07d}.ckpt.tmp"
    assert partial.is_file(), sorted(p.name for p in ckpt_dir.iterdir())  # the kill really hit a write
    with pytest.raises(Exception):  # noqa: B017 - any reader error: the file is cut in half
        torch.load(partial, weights_only=True)
    assert not (ckpt_dir / f"step-{KILL_WHILE_SAVING:07d}.ckpt").exists()

    resume_from = find_resume_checkpoint(ckpt_dir, hpc_dir=run_dir)
    assert resume_from is not None and resume_from.name == "last.ckpt"
    trained = load_training_checkpoint(resume_from)
    assert trained.global_step == EVERY
    assert all(torch.isfinite(p).all() for p in trained.model.parameters())

    resumed = run_flat(compose_config(_overrides(tmp_path)))
    assert resumed["resumed_from"] and resumed["resumed_from"].endswith("last.ckpt")
    assert sorted(read_step_metrics(run_dir / "metrics.jsonl")) == list(range(1, N_STEPS + 1))
    assert not partial.exists()  # the resumed run cleaned up the interrupted write
    assert load_training_checkpoint(ckpt_dir / "last.ckpt").global_step == N_STEPS

    # The run-end release-format export is the final checkpoint's model (non-LoRA run: identical tensors).
    final = load_checkpoint(ckpt_dir / "last.ckpt").model.state_dict()
    exported = load_checkpoint(run_dir / "export" / "release").model.state_dict()
    assert final.keys() == exported.keys() and all(torch.equal(final[k], exported[k]) for k in final)
