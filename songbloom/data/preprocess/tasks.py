"""Who encodes what: the SLURM array task, the train/val split of a song, the worker of a song (stable hashes)."""

from __future__ import annotations

import hashlib
import os

from songbloom.data.manifest import SongRecord
from songbloom.data.preprocess.config import PreprocessConfig


def stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def resolve_task(task_index: int | None, num_tasks: int | None) -> tuple[int, int]:
    """Task from arguments, else from SLURM array variables (ids are made 0-based), else (0, 1)."""
    if num_tasks is None:
        num_tasks = int(os.environ.get("SLURM_ARRAY_TASK_COUNT", "1"))
    if task_index is None:
        tid = os.environ.get("SLURM_ARRAY_TASK_ID")
        task_index = int(tid) - int(os.environ.get("SLURM_ARRAY_TASK_MIN", "0")) if tid is not None else 0
    if not 0 <= task_index < num_tasks:
        raise ValueError(f"task index {task_index} is outside 0..{num_tasks - 1} (--task-index/--num-tasks)")
    return task_index, num_tasks


def assign_split(rec: SongRecord, cfg: PreprocessConfig) -> str:
    """Split by song (all segments of one song on one side), stable across runs and task counts."""
    if rec.split:
        return rec.split
    u = stable_hash(f"{cfg.split_seed}:{rec.song_id}") / 2**64
    return "val" if u < cfg.val_fraction else "train"


def task_records(records: list[SongRecord], task_index: int, num_tasks: int) -> list[SongRecord]:
    """The songs of this array task."""
    return [r for r in records if stable_hash(r.idx) % num_tasks == task_index]


def worker_records(records: list[SongRecord], workers: int) -> list[list[SongRecord]]:
    """The songs of each worker process."""
    return [[r for r in records if stable_hash("w" + r.idx) % workers == w] for w in range(workers)]
