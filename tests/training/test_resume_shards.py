"""Exact mid-epoch resume on the shard datamodule: N steps straight == N/2 steps, SIGKILL, automatic resume.

The kill lands in the middle of an epoch (4 batches per epoch, killed after step 3) and the resumed run crosses
the epoch boundary, with 0 and with 2 data workers (whose round-robin batch order the resume must reproduce).
Both killed runs start first as subprocesses, so their start-up overlaps with the straight runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from songbloom.data.preprocess import PreprocessConfig, run_preprocess
from songbloom.data.synthetic import make_synthetic_dataset
from songbloom.training.callbacks import read_step_metrics
from tests.data.standins import SHARD_KW, toy_encoders
from tests.faults.injection import FAULT
from tests.training.conftest import REPO_ROOT, compose_config, run_flat

N_STEPS = 6
KILL_AT = 3
WORKERS = (0, 2)


@pytest.fixture(scope="module")
def tiny_shards(tmp_path_factory) -> Path:
    """Toy-encoded shards whose geometry fits ``model=tiny`` (8-d latents, 64 sketch codes)."""
    root = tmp_path_factory.mktemp("resume_shards")
    manifest = make_synthetic_dataset(root / "songs", num_songs=5, min_seconds=7.0, max_seconds=9.0, seed=3)
    cfg = PreprocessConfig(out_dir=str(root / "shards"), **SHARD_KW)
    report = run_preprocess([manifest], cfg, toy_encoders())
    assert report.written > 0 and not report.problems, report.to_json()
    return root / "shards"


def shard_overrides(root: Path, shards: Path, run_name: str, workers: int) -> list[str]:
    return [
        f"paths.root_dir={root}",
        "model=tiny",
        "trainer=cpu",
        "data=shards",
        "debug=ci",
        "demo.enabled=false",
        f"data.shards_dir={shards}",
        "data.batch_size=2",
        "data.max_frames=32",
        "data.shuffle_buffer=2",
        "data.bucket_batches=1",
        "data.batches_per_epoch=4",  # killed mid-epoch; the resumed run crosses into the next epoch
        f"data.num_workers={workers}",
        f"trainer.max_steps={N_STEPS}",
        f"callbacks.checkpoint.every_n_steps={KILL_AT}",
        f"run_name={run_name}",
    ]


def test_shard_stream_kill_and_resume_matches_straight_run(tmp_path: Path, tiny_shards: Path):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    killed = {
        w: subprocess.Popen(
            [
                sys.executable,
                "train.py",
                *shard_overrides(tmp_path, tiny_shards, f"killed-w{w}", w),
                FAULT, f"+callbacks.fault.sigkill_after_step={KILL_AT}",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in WORKERS
    }
    try:
        straight = {
            w: run_flat(compose_config(shard_overrides(tmp_path, tiny_shards, f"straight-w{w}", w))) for w in WORKERS
        }
        for w, proc in killed.items():
            _, err = proc.communicate(timeout=600)
            assert proc.returncode == -signal.SIGKILL, err[-3000:]
    finally:
        for proc in killed.values():
            if proc.poll() is None:
                proc.kill()

    for w in WORKERS:
        killed_dir = tmp_path / "outputs" / "runs" / f"killed-w{w}"
        assert sorted(read_step_metrics(killed_dir / "metrics.jsonl")) == list(range(1, KILL_AT + 1))
        resumed = run_flat(compose_config(shard_overrides(tmp_path, tiny_shards, f"killed-w{w}", w)))
        assert resumed["resumed_from"] and resumed["resumed_from"].endswith("last.ckpt")
        assert "after 3 consumed batches" in (killed_dir / "train.log").read_text()

        a = read_step_metrics(Path(straight[w]["run_dir"]) / "metrics.jsonl")
        b = read_step_metrics(killed_dir / "metrics.jsonl")
        assert sorted(a) == sorted(b) == list(range(1, N_STEPS + 1))
        for step in a:
            for key in ("loss", "ar_loss", "flow_loss"):
                assert abs(a[step][key] - b[step][key]) <= 1e-6, (w, step, key, a[step][key], b[step][key])
    # The two worker settings stream differently (round-robin over per-worker streams): the check has teeth.
    la = read_step_metrics(Path(straight[0]["run_dir"]) / "metrics.jsonl")
    lb = read_step_metrics(Path(straight[2]["run_dir"]) / "metrics.jsonl")
    assert any(abs(la[s]["loss"] - lb[s]["loss"]) > 1e-6 for s in la)
