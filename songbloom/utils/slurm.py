"""Facts about the SLURM job this process runs in, and the checks Lightning makes too late or too vaguely.

Lightning reads the task layout from ``SLURM_NTASKS_PER_NODE``/``SLURM_NNODES``. A mismatch with the Trainer's
``devices``/``num_nodes`` either hangs at the rendezvous or raises an error that does not say which ``#SBATCH``
line to change; :func:`check_task_layout` says exactly that, before any process group is created.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

logger = logging.getLogger(__name__)

# Lightning ignores SLURM when the job is an interactive shell (its SLURMEnvironment.detect()).
INTERACTIVE_JOB_NAMES = ("bash", "interactive")
_JOB_ID = re.compile(r"^[0-9]+(_[0-9]+)?$")


class SlurmLayoutError(ValueError):
    """The SLURM task layout does not match the Trainer's devices/num_nodes."""


@dataclass(frozen=True)
class SlurmJob:
    """The parts of a SLURM job's environment the training run depends on."""

    job_id: str
    job_name: str
    ntasks: int | None
    ntasks_per_node: int | None
    nnodes: int | None
    restart_count: int
    array_job_id: str | None = None
    array_task_id: str | None = None

    @property
    def requeue_id(self) -> str:
        """The id ``scontrol requeue`` needs (``<array job>_<task>`` for array tasks)."""
        if self.array_job_id and self.array_task_id:
            return f"{self.array_job_id}_{self.array_task_id}"
        return self.job_id

    @property
    def interactive(self) -> bool:
        return self.job_name in INTERACTIVE_JOB_NAMES


def _int_or_none(value: str | None) -> int | None:
    if value in (None, ""):
        return None
    # SLURM_TASKS_PER_NODE-style values ("2(x3)") repeat one count over several nodes.
    m = re.match(r"^(\d+)", value)
    return int(m.group(1)) if m else None


def current_job(env: Mapping[str, str] | None = None) -> SlurmJob | None:
    """The SLURM job of this process, or None outside SLURM."""
    env = os.environ if env is None else env
    job_id = env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID")
    if not job_id:
        return None
    return SlurmJob(
        job_id=job_id,
        job_name=env.get("SLURM_JOB_NAME", ""),
        ntasks=_int_or_none(env.get("SLURM_NTASKS")),
        ntasks_per_node=_int_or_none(env.get("SLURM_NTASKS_PER_NODE")),
        nnodes=_int_or_none(env.get("SLURM_NNODES") or env.get("SLURM_JOB_NUM_NODES")),
        restart_count=_int_or_none(env.get("SLURM_RESTART_COUNT")) or 0,
        array_job_id=env.get("SLURM_ARRAY_JOB_ID"),
        array_task_id=env.get("SLURM_ARRAY_TASK_ID"),
    )


def array_task(
    task_index: int | None = None, num_tasks: int | None = None, env: Mapping[str, str] | None = None
) -> tuple[int, int]:
    """(task index, task count) of a job split into array tasks: the arguments when given, else the SLURM array
    variables, else (0, 1).

    SLURM numbers array tasks by the ``--array`` range (``--array=1-8`` gives ids 1..8, ``--array=0-15:4`` ids
    0, 4, 8, 12); the index is made 0-based and contiguous: ``(SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN) //
    SLURM_ARRAY_TASK_STEP``, the count is ``SLURM_ARRAY_TASK_COUNT``.

    Raises:
        ValueError: the index falls outside ``0..count-1`` (for instance an ``--array`` list with gaps).
    """
    env = os.environ if env is None else env
    if num_tasks is None:
        num_tasks = int(env.get("SLURM_ARRAY_TASK_COUNT", "1"))
    if task_index is None:
        tid = env.get("SLURM_ARRAY_TASK_ID")
        if tid is None:
            task_index = 0
        else:
            step = max(1, int(env.get("SLURM_ARRAY_TASK_STEP") or 1))
            task_index = (int(tid) - int(env.get("SLURM_ARRAY_TASK_MIN") or 0)) // step
    if num_tasks < 1 or not 0 <= task_index < num_tasks:
        raise ValueError(
            f"task index {task_index} is outside 0..{num_tasks - 1} (--task-index/--num-tasks); under SLURM use a "
            "contiguous --array range such as 0-7 or 1-8 (a step like 0-15:2 is fine, a list with gaps is not)"
        )
    return task_index, num_tasks


def resolve_devices(devices: int | str | list | tuple | None, accelerator: str | None = None) -> int | None:
    """How many processes per node a Trainer with these settings expects (None when it cannot be known)."""
    if devices is None:
        return 1
    if isinstance(devices, list | tuple):
        return len(devices)
    text = str(devices).strip()
    if text in ("auto", "-1"):
        acc = (accelerator or "auto").lower()
        if acc == "cpu":
            return 1
        try:
            import torch

            n = torch.cuda.device_count()
        except Exception:
            n = 0
        return n if n > 0 else (1 if acc in ("auto", "cpu") else None)
    if "," in text:
        return len([d for d in text.split(",") if d.strip()])
    try:
        return int(text)
    except ValueError:
        return None


def check_task_layout(
    devices: int | str | list | None,
    num_nodes: int | None,
    accelerator: str | None = None,
    env: Mapping[str, str] | None = None,
) -> SlurmJob | None:
    """Refuse a SLURM job whose tasks do not match ``trainer.devices``/``trainer.num_nodes``.

    One task per device: ``#SBATCH --ntasks-per-node`` must equal ``devices`` and ``#SBATCH --nodes`` must equal
    ``num_nodes``. Outside SLURM, or in an interactive allocation (which Lightning does not treat as SLURM),
    nothing is checked.

    Raises:
        SlurmLayoutError: naming the ``#SBATCH`` line to change (or the Trainer setting).
    """
    job = current_job(env)
    if job is None:
        return None
    if job.interactive:
        logger.warning(
            "SLURM job name %r: Lightning does not treat this as a SLURM job and launches its own processes; "
            "submit with sbatch (or srun --job-name=<name>) to use the SLURM task layout",
            job.job_name,
        )
        return job
    expected = resolve_devices(devices, accelerator)
    nodes = int(num_nodes or 1)
    if job.ntasks_per_node is None and job.ntasks is not None:
        raise SlurmLayoutError(
            f"this SLURM job sets the task count with --ntasks={job.ntasks} (or -n), which Lightning does not "
            f"support: replace it with `#SBATCH --ntasks-per-node={expected or job.ntasks}` (one task per device) "
            f"and `#SBATCH --nodes={nodes}`"
        )
    if expected is not None and job.ntasks_per_node is not None and job.ntasks_per_node != expected:
        raise SlurmLayoutError(
            f"SLURM started {job.ntasks_per_node} task(s) per node but trainer.devices={devices!r} "
            f"({expected} per node): change the sbatch line to `#SBATCH --ntasks-per-node={expected}` "
            f"(one task per device), or set trainer.devices={job.ntasks_per_node}"
        )
    if job.nnodes is not None and job.nnodes != nodes:
        raise SlurmLayoutError(
            f"SLURM allocated {job.nnodes} node(s) but trainer.num_nodes={nodes}: change the sbatch line to "
            f"`#SBATCH --nodes={nodes}`, or set trainer.num_nodes={job.nnodes}"
        )
    return job


def requeue(job: SlurmJob, timeout_s: float = 60.0) -> bool:
    """``scontrol requeue`` this job; True when SLURM accepted it (the job restarts with the same id)."""
    job_id = job.requeue_id
    if not _JOB_ID.match(job_id):
        raise ValueError(f"refusing to requeue a malformed SLURM job id {job_id!r}")
    try:
        done = subprocess.run(
            ["scontrol", "requeue", job_id], capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        logger.error("scontrol requeue %s failed: %s", job_id, e)
        return False
    if done.returncode != 0:
        logger.error("scontrol requeue %s exited %d: %s", job_id, done.returncode, done.stderr.strip())
        return False
    logger.info("requeued SLURM job %s", job_id)
    return True


def parse_time_left(text: str) -> float | None:
    """Seconds in squeue's ``%L`` format (``[D-]HH:MM:SS``, ``MM:SS``); None for UNLIMITED/NOT_SET/INVALID."""
    text = text.strip()
    m = re.match(r"^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)$", text)
    if not m:
        return None
    days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def time_left_s(job: SlurmJob, timeout_s: float = 10.0) -> float | None:
    """Seconds until the job's time limit (None when unlimited or unknown)."""
    try:
        done = subprocess.run(
            ["squeue", "-h", "-j", job.job_id, "-o", "%L"], capture_output=True, text=True, timeout=timeout_s
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_time_left(done.stdout.splitlines()[0]) if done.returncode == 0 and done.stdout.strip() else None
