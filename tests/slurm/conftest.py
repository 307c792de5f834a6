"""The local SLURM test cluster (started by ``.ci/run`` via ``scripts/slurm/local_cluster.sh``).

``SONGBLOOM_SLURM_CONF`` points at its slurm.conf. Without it, ``slurm`` tests are skipped with the reason on
a developer machine and FAIL in CI (``CI=true``), where ``.ci/run`` must have started the cluster. Every wait
here has a timeout; a job still running at its timeout is cancelled and the test fails with its log.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _run(args: list[str], env: dict[str, str], timeout: float = 30.0) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, check=False)


@dataclass
class SlurmCluster:
    conf: Path
    env: dict[str, str]

    def submit(self, script: str, path: Path, *extra: str) -> str:
        path.write_text(script)
        done = _run(["sbatch", "--parsable", *extra, str(path)], self.env)
        assert done.returncode == 0, f"sbatch failed: {done.stderr}"
        return done.stdout.strip().split(";")[0]

    def states(self, job_id: str) -> list[dict[str, str]]:
        """One dict per job (array: per task) from ``scontrol show job -o``."""
        done = _run(["scontrol", "show", "job", "-o", job_id], self.env, timeout=15)
        out = []
        for line in done.stdout.splitlines():
            fields = dict(re.findall(r"(\w+)=(\S*)", line))
            if "JobState" in fields:
                out.append(fields)
        return out

    def release_if_held(self, job_id: str, fields: dict[str, str]) -> bool:
        """A requeued job waits ~2 min for its BeginTime; start it now (tests only)."""
        if fields.get("JobState") == "PENDING" and fields.get("Reason") == "BeginTime":
            _run(["scontrol", "update", f"JobId={fields['JobId']}", "StartTime=now"], self.env, timeout=15)
            return True
        return False

    def wait(self, job_id: str, timeout_s: float, log: Path | None = None) -> list[dict[str, str]]:
        """Poll until every task of the job is in a terminal state; cancel and fail at the timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            states = self.states(job_id)
            for s in states:
                self.release_if_held(job_id, s)
            if states and all(s["JobState"] in TERMINAL for s in states):
                return states
            time.sleep(0.5)
        _run(["scancel", job_id], self.env, timeout=15)
        tail = log.read_text()[-4000:] if log is not None and log.is_file() else "(no log)"
        pytest.fail(f"SLURM job {job_id} did not finish within {timeout_s:.0f}s; cancelled. Log tail:\n{tail}")

    def signal(self, job_id: str, sig: str) -> None:
        done = _run(["scancel", "-s", sig, job_id], self.env, timeout=15)
        assert done.returncode == 0, f"scancel -s {sig} {job_id} failed: {done.stderr}"


@pytest.fixture(scope="session")
def slurm_cluster() -> SlurmCluster:
    conf = os.environ.get("SONGBLOOM_SLURM_CONF")
    how = "start one with `scripts/slurm/local_cluster.sh start` and export SONGBLOOM_SLURM_CONF=<its slurm.conf>"
    if not conf:
        if _in_ci():
            pytest.fail(f"CI=true but SONGBLOOM_SLURM_CONF is not set: .ci/run must start the test cluster ({how})")
        pytest.skip(f"no SLURM test cluster (SONGBLOOM_SLURM_CONF unset): {how}")
    if not Path(conf).is_file():
        pytest.fail(f"SONGBLOOM_SLURM_CONF={conf} does not exist: {how}", pytrace=False)
    env = {**os.environ, "SLURM_CONF": conf, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    env.pop("SLURM_JOB_ID", None)  # never let a test job look like it runs inside an outer allocation
    try:
        done = _run(["sinfo", "-h", "-o", "%T"], env, timeout=15)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.fail(f"sinfo failed ({e}): is slurm installed and the cluster up? {how}", pytrace=False)
    states = done.stdout.split()
    if done.returncode != 0 or not any(s.rstrip("*") in ("idle", "mixed", "allocated") for s in states):
        pytest.fail(f"the SLURM test cluster is not usable (sinfo: {done.stdout or done.stderr!r}); {how}")
    return SlurmCluster(Path(conf), env)


@pytest.fixture(scope="session")
def render_module():
    """scripts/slurm/render.py as a module (it is a script, not part of the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("songbloom_slurm_render", REPO / "scripts/slurm/render.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def python_exe() -> str:
    return sys.executable
