"""Real SLURM jobs on the local test cluster: 2-rank DDP, USR1 -> requeue -> exact resume, a preprocessing array.

The training jobs run ``tests/slurm/standin_train.py`` (see its docstring) through the ``ci_cpu_ddp`` recipe,
the same sbatch template users submit. Step counts are small; each wait has a timeout.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slurm

MAX_STEPS = 24
FINISHED = re.compile(
    r"\[standin\] rank=(\d+) FINISHED global_step=(\d+) world_size=(\d+) cluster_env=(\w+) "
    r"batches_this_attempt=(\d+) checksum=(\S+)"
)


def _script(render_module, python_exe: str, tmp: Path, name: str, *args: str, **sets: str) -> tuple[str, Path]:
    values = render_module.resolve(
        "ci_cpu_ddp",
        {
            "job_name": name,
            "workdir": str(REPO),
            "python": python_exe,
            "entry": "tests/slurm/standin_train.py",
            "log_dir": str(tmp),
            **sets,
        },
        [f"paths.runs_dir={tmp / 'runs'}", f"run_name={name}", f"trainer.max_steps={MAX_STEPS}", *args],
    )
    script = render_module.render(values)
    assert render_module.check_script(script) == []
    return script, tmp / f"{name}-%j.out"


def _log(pattern: Path, job_id: str) -> Path:
    return Path(str(pattern).replace("%j", job_id))


def _finished(text: str) -> list[tuple]:
    return [m.groups() for m in FINISHED.finditer(text)]


@pytest.fixture(scope="module")
def straight_run(slurm_cluster, render_module, python_exe, tmp_path_factory):
    """An uninterrupted 2-rank run: the reference for the requeue test's final weights."""
    tmp = tmp_path_factory.mktemp("ddp")
    script, out = _script(render_module, python_exe, tmp, "sb-ddp")
    t0 = time.monotonic()
    job = slurm_cluster.submit(script, tmp / "job.sbatch")
    states = slurm_cluster.wait(job, 240, _log(out, job))
    text = _log(out, job).read_text()
    return {"job": job, "states": states, "text": text, "tmp": tmp, "seconds": time.monotonic() - t0}


def test_ddp_job_two_ranks_to_completion(straight_run):
    text = straight_run["text"]
    assert straight_run["states"][0]["JobState"] == "COMPLETED", text[-3000:]
    done = _finished(text)
    assert sorted(int(r[0]) for r in done) == [0, 1], text[-3000:]
    for rank, step, world, env, batches, _ in done:
        assert (int(step), int(world), env) == (MAX_STEPS, 2, "SLURMEnvironment")
    # Both ranks trained the same number of batches (DDP would hang otherwise) and hold the same weights.
    assert len({r[4] for r in done}) == 1 and int(done[0][4]) == MAX_STEPS
    assert len({r[5] for r in done}) == 1
    # Exactly one requeue mechanism: Lightning's own is off.
    assert "auto_requeue=[False]" in text
    assert "SLURM auto-requeueing enabled" not in text


def test_usr1_requeues_and_resumes_exactly(slurm_cluster, render_module, python_exe, tmp_path, straight_run):
    name = "sb-usr1"
    script, out = _script(render_module, python_exe, tmp_path, name, "standin.step_sleep=0.4")
    job = slurm_cluster.submit(script, tmp_path / "job.sbatch")
    log = _log(out, job)
    metrics = tmp_path / "runs" / name / "metrics.jsonl"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:  # signal mid-run, once a few steps are done
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 4:
            break
        states = slurm_cluster.states(job)
        if states and states[0]["JobState"] in ("FAILED", "CANCELLED", "COMPLETED"):
            pytest.fail(f"job ended before the signal: {states[0]['JobState']}\n{log.read_text()[-3000:]}")
        time.sleep(0.3)
    else:
        slurm_cluster.wait(job, 1, log)  # cancels and fails with the log
    slurm_cluster.signal(job, "USR1")
    states = slurm_cluster.wait(job, 240, log)
    text = log.read_text()
    assert states[0]["JobState"] == "COMPLETED", text[-4000:]
    assert states[0].get("Restarts") == "1", states[0]

    run_dir = tmp_path / "runs" / name
    records = [json.loads(x) for x in (run_dir / "preemptions.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["requeued"] and records[0]["reason"] == "SIGUSR1", records
    preempt_step = records[0]["step"]
    assert 0 < preempt_step < MAX_STEPS
    # The requeued attempt resumed from the preemption checkpoint in the same run dir, same W&B run id.
    assert re.search(rf"rank=0 restart=1 resume_from=\S*{name}/checkpoints/last.ckpt", text), text[-4000:]
    ids = set(re.findall(r"wandb_id=(\w+)", text))
    assert len(ids) == 1, ids
    # Same final step count on both ranks, and bit-identical weights to the uninterrupted run.
    done = _finished(text)
    assert sorted(int(r[0]) for r in done) == [0, 1]
    assert all(int(r[1]) == MAX_STEPS for r in done)
    assert all(int(r[4]) == MAX_STEPS - preempt_step for r in done)  # the second attempt did only the rest
    reference = _finished(straight_run["text"])[0][5]
    assert {r[5] for r in done} == {reference}
    # A continuous loss log: every step once, in order, across both attempts.
    steps = [json.loads(x)["step"] for x in metrics.read_text().splitlines()]
    assert steps == list(range(1, MAX_STEPS + 1)), steps


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
