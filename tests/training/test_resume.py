"""Resume equivalence: N steps straight == N/2 steps, SIGKILL after the N/2 checkpoint, automatic resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from songbloom.training.callbacks import read_step_metrics
from tests.faults.injection import FAULT
from tests.training.conftest import REPO_ROOT, TINY_CPU, compose_config, run_flat

N_STEPS = 6
KILL_AT = 3


def _overrides(root: Path, run_name: str, workers: int, extra: list[str]) -> list[str]:
    return [
        f"paths.root_dir={root}",
        *TINY_CPU,
        "data.num_songs=8",  # 4 batches per epoch: the run crosses an epoch boundary after the resume
        f"data.num_workers={workers}",
        f"trainer.max_steps={N_STEPS}",
        f"callbacks.checkpoint.every_n_steps={KILL_AT}",
        f"run_name={run_name}",
        *extra,
    ]


@pytest.mark.parametrize(
    ("workers", "extra"),
    [
        (0, []),
        # LoRA with adapter-only checkpoints, fully-trained sets and EMA: every piece of state must come back.
        (2, ["lora=lm_all", "text.language=ja", "training.save_frozen_base=false", "training.ema=true"]),
    ],
    ids=["workers0", "workers2-lora-ema"],
)
def test_kill_and_resume_matches_straight_run(tmp_path: Path, workers: int, extra: list[str]):
    straight = run_flat(compose_config(_overrides(tmp_path, "straight", workers, extra)))
    assert straight["steps"] == N_STEPS

    cmd = [
        sys.executable,
        "train.py",
        *_overrides(tmp_path, "killed", workers, extra),
        FAULT, f"+callbacks.fault.sigkill_after_step={KILL_AT}",
    ]
    proc = subprocess.run(
        cmd,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    killed_dir = tmp_path / "outputs" / "runs" / "killed"
    assert sorted(read_step_metrics(killed_dir / "metrics.jsonl")) == list(range(1, KILL_AT + 1))

    resumed = run_flat(compose_config(_overrides(tmp_path, "killed", workers, extra)))
    assert resumed["resumed_from"] and resumed["resumed_from"].endswith("last.ckpt")

    a = read_step_metrics(Path(straight["run_dir"]) / "metrics.jsonl")
    b = read_step_metrics(killed_dir / "metrics.jsonl")
    assert sorted(a) == sorted(b) == list(range(1, N_STEPS + 1))
    for step in a:
        for key in ("loss", "ar_loss", "flow_loss"):
            assert abs(a[step][key] - b[step][key]) <= 1e-6, (step, key, a[step][key], b[step][key])

    # The final weights (EMA when enabled) are the same too.
    ga = load_file(str(Path(straight["run_dir"]) / "export" / "generator.safetensors"))
    gb = load_file(str(killed_dir / "export" / "generator.safetensors"))
    assert ga.keys() == gb.keys()
    worst = max(float((ga[k] - gb[k]).abs().max()) for k in ga)
    assert worst <= 1e-6, worst
