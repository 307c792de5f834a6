"""Real SLURM jobs on the local test cluster: 2-rank DDP, USR1 -> requeue -> resume, a preprocessing array.

The training jobs go through the ``ci_cpu_ddp`` recipe, the same sbatch template users submit. They run
``train.py experiment=demo trainer=ddp debug=ci ...``. Step counts are small; each wait has a timeout.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slurm

# train.py steps of the tiny model take a fraction of a second: more of them leave time to signal mid-run.
MAX_STEPS = 80


def _script(render_module, python_exe: str, tmp: Path, name: str, **sets: str) -> tuple[str, Path]:
    # In-memory synthetic data (the demo's shard preparation is not DDP-safe yet); the training stack's
    # batch sampler splits batches over ranks itself, so Lightning must not inject a DistributedSampler.
    entry, mode_args = "train.py", ["demo.enabled=false", "++trainer.use_distributed_sampler=false"]
    values = render_module.resolve(
        "ci_cpu_ddp",
        {"job_name": name, "workdir": str(REPO), "python": python_exe, "entry": entry, "log_dir": str(tmp), **sets},
        [f"paths.runs_dir={tmp / 'runs'}", f"run_name={name}", f"trainer.max_steps={MAX_STEPS}", *mode_args],
    )
    script = render_module.render(values)
    assert render_module.check_script(script) == []
    return script, tmp / f"{name}-%j.out"


def _log(pattern: Path, job_id: str) -> Path:
    return Path(str(pattern).replace("%j", job_id))


def _steps(metrics: Path) -> list[int]:
    return [int(json.loads(x)["step"]) for x in metrics.read_text().splitlines()]


def _losses(metrics: Path) -> dict[int, float]:
    return {int(r["step"]): r["loss"] for r in map(json.loads, metrics.read_text().splitlines())}


@pytest.fixture(scope="module")
def straight_run(slurm_cluster, render_module, python_exe, tmp_path_factory):
    """An uninterrupted 2-rank run: the reference for the requeue test."""
    tmp = tmp_path_factory.mktemp("ddp")
    script, out = _script(render_module, python_exe, tmp, "sb-ddp")
    job = slurm_cluster.submit(script, tmp / "job.sbatch")
    states = slurm_cluster.wait(job, 300, _log(out, job))
    text = _log(out, job).read_text()
    return {"states": states, "text": text, "run_dir": tmp / "runs" / "sb-ddp"}


def test_ddp_job_two_ranks_to_completion(straight_run):
    text = straight_run["text"]
    assert straight_run["states"][0]["JobState"] == "COMPLETED", text[-3000:]
    assert "distributed_backend=gloo" in text and "Starting with 2 processes" in text, text[-3000:]
    assert text.count("trainable fully_trained:") == 2, text[-3000:]  # each rank set up the LightningModule
    # Exactly one requeue mechanism: Lightning's own is off.
    assert "SLURM auto-requeueing enabled" not in text
    # The run completed max_steps on both ranks (unequal batch counts per rank would hang DDP until the timeout).
    assert _steps(straight_run["run_dir"] / "metrics.jsonl") == list(range(1, MAX_STEPS + 1))
    assert text.count(f"`max_steps={MAX_STEPS}` reached") >= 1, text[-3000:]  # a rank-0 message, logged once
    assert (straight_run["run_dir"] / "checkpoints" / f"step-{MAX_STEPS:07d}.ckpt").is_file()


def _preempted_run(slurm_cluster, render_module, python_exe, tmp_path) -> dict:
    name = "sb-usr1"
    script, out = _script(render_module, python_exe, tmp_path, name)
    job = slurm_cluster.submit(script, tmp_path / "job.sbatch")
    log = _log(out, job)
    metrics = tmp_path / "runs" / name / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # signal mid-run, once a few steps are done
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 3:
            break
        states = slurm_cluster.states(job)
        if states and states[0]["JobState"] in ("FAILED", "CANCELLED", "COMPLETED"):
            pytest.fail(f"job ended before the signal: {states[0]['JobState']}\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    else:
        slurm_cluster.wait(job, 1, log)  # cancels and fails with the log
    slurm_cluster.signal(job, "USR1")
    states = slurm_cluster.wait(job, 300, log)
    return {"states": states, "text": log.read_text(), "run_dir": tmp_path / "runs" / name, "name": name}


def test_usr1_requeues_and_resumes(slurm_cluster, render_module, python_exe, tmp_path, straight_run):
    run = _preempted_run(slurm_cluster, render_module, python_exe, tmp_path)
    text, run_dir, states = run["text"], run["run_dir"], run["states"]
    assert states[0]["JobState"] == "COMPLETED", text[-4000:]
    assert states[0].get("Restarts") == "1", states[0]
    records = [json.loads(x) for x in (run_dir / "preemptions.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["requeued"] and records[0]["reason"] == "SIGUSR1", records
    preempt_step = records[0]["step"]
    assert 0 < preempt_step < MAX_STEPS
    # A continuous loss log: every step once, in order, across both attempts; the same final step count.
    metrics = run_dir / "metrics.jsonl"
    assert _steps(metrics) == list(range(1, MAX_STEPS + 1)), _steps(metrics)
    # Up to the preemption the run is the uninterrupted one, step for step.
    reference = _losses(straight_run["run_dir"] / "metrics.jsonl")
    got = _losses(metrics)
    assert all(got[s] == reference[s] for s in range(1, preempt_step + 1))
    # The requeued attempt resumed from the preemption checkpoint in the same run dir.
    assert text.count(f"resuming from {run_dir}/checkpoints/last.ckpt") == 2, text[-4000:]
    assert "Restored all states from the checkpoint" in text
    assert text.count(f"`max_steps={MAX_STEPS}` reached") >= 1, text[-3000:]  # a rank-0 message, logged once


def test_task_layout_mismatch_fails_with_the_sbatch_line(slurm_cluster, python_exe):
    # 2 tasks per node, but the Trainer is told 1 device: refused before any process group starts, naming the line.
    code = "from songbloom.utils.slurm import check_task_layout; check_task_layout(1, 1, 'cpu')"
    done = subprocess.run(
        ["srun", "--job-name=sb-layout", "--nodes=1", "--ntasks-per-node=2", python_exe, "-c", code],
        env=slurm_cluster.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "SlurmLayoutError" in done.stderr and "#SBATCH --ntasks-per-node=1" in done.stderr, done.stderr[-3000:]
    # The same check passes when the layout matches.
    ok = code.replace("check_task_layout(1, 1", "check_task_layout(2, 1")
    done = subprocess.run(
        ["srun", "--job-name=sb-layout", "--nodes=1", "--ntasks-per-node=2", python_exe, "-c", ok],
        env=slurm_cluster.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_preprocessing_array_job(slurm_cluster, render_module, python_exe, tmp_path):
    manifest = tmp_path / "songs.jsonl"
    manifest.write_text("".join(json.dumps({"id": f"song{i:02d}"}) + "\n" for i in range(10)))
    values = render_module.resolve(
        "preprocess_array",
        {
            "job_name": "sb-prep",
            "num_tasks": "3",
            "max_parallel": "3",
            "gpus_per_node": "",
            "cpus_per_task": "1",
            "mem": "",
            "time": "00:05:00",
            "workdir": str(REPO),
            "setup": "",
            "python": python_exe,
            "entry": "tests/slurm/standin_preprocess.py",
            "log_dir": str(tmp_path),
            "args": f"{manifest} --out {tmp_path / 'shards'}",
        },
    )
    script = render_module.render(values)
    assert "#SBATCH --array=0-2%3" in script and render_module.check_script(script) == []
    job = slurm_cluster.submit(script, tmp_path / "job.sbatch")
    states = slurm_cluster.wait(job, 120)
    assert len(states) == 3 and all(s["JobState"] == "COMPLETED" for s in states), states
    chunks = sorted((tmp_path / "shards").glob("chunk-*.jsonl"))
    assert [c.name for c in chunks] == ["chunk-000.jsonl", "chunk-001.jsonl", "chunk-002.jsonl"]
    ids = [json.loads(x)["id"] for c in chunks for x in c.read_text().splitlines()]
    assert sorted(ids) == [f"song{i:02d}" for i in range(10)]  # every item once, none lost or duplicated
