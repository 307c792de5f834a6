"""One writer per (output folder, array task): a lock file with host, pid, worker pids and a heartbeat.

Array tasks share one output folder (each writes only shards named after its own task), so the lock is per
task: ``locks/task-TTTT.lock``. It is taken before anything of the task is touched and refused while another
process holds it. A lock is stale, and is taken over, when its heartbeat is older than ``stale_after_s``, or
when its process is gone on this host; the takeover then waits until the dead holder's worker processes are
gone too (they exit by themselves when their parent dies: :func:`songbloom.utils.processes.exit_with_owner`),
so a rerun never races an orphan for the same shard names. Every read-check-write of a lock (and of the
folder-wide files ``provenance.json`` and ``index.json``) runs under an ``flock`` on ``locks/.guard``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from songbloom.utils.atomic import atomic_write_json
from songbloom.utils.processes import pid_alive

logger = logging.getLogger("songbloom.data.preprocess")

LOCK_DIR = "locks"
STALE_AFTER_S = 120.0  # a heartbeat older than this marks a lock stale (any host)
LOST_LOCK_EXIT = 75  # exit status of a task whose lock was taken over while it ran (it stops writing at once)


class OutputLocked(RuntimeError):
    """Another live process writes this array task into the same output folder."""


@contextlib.contextmanager
def folder_guard(out_dir: str | Path) -> Iterator[None]:
    """Serialise lock and folder-file updates between processes (an exclusive ``flock`` on ``locks/.guard``)."""
    lock_dir = Path(out_dir) / LOCK_DIR
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / ".guard", "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def lock_path(out_dir: str | Path, task_index: int) -> Path:
    return Path(out_dir) / LOCK_DIR / f"task-{task_index:04d}.lock"


def read_lock(path: Path) -> dict[str, Any] | None:
    """The lock's content; ``None`` when there is no lock file; ``{}`` when it cannot be read."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def _describe(info: dict[str, Any], now: float) -> str:
    age = now - float(info.get("heartbeat", 0.0))
    return f"host {info.get('host')} pid {info.get('pid')} (heartbeat {age:.0f} s ago)"


def stale_reason(info: dict[str, Any], now: float, stale_after_s: float, mtime: float) -> str | None:
    """Why the lock ``info`` no longer protects a live writer, or ``None`` while its holder lives."""
    heartbeat = float(info.get("heartbeat", mtime))
    if now - heartbeat > stale_after_s:
        return f"its heartbeat is {now - heartbeat:.0f} s old (stale after {stale_after_s:.0f} s)"
    if info.get("host") == socket.gethostname() and not pid_alive(int(info.get("pid", -1))):
        return f"its process {info.get('pid')} is gone"
    return None


def _wait_for_workers(info: dict[str, Any], path: Path, wait_s: float) -> None:
    """Wait until the worker processes of a dead holder on this host are gone; refuse if they live on."""
    if info.get("host") != socket.gethostname():
        return  # another host: the heartbeat age alone decided; its orphans exited long before it went stale
    deadline = time.monotonic() + wait_s
    alive = [int(p) for p in info.get("workers", []) if pid_alive(int(p))]
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in alive if pid_alive(p)]
    if alive:
        raise OutputLocked(
            f"{path}: the process that held this lock is gone but its workers {alive} still run after {wait_s:.0f} s. "
            "They stop by themselves when their parent dies; if they do not, end them (kill PID) and rerun."
        )


@dataclass
class TaskLock:
    """A held task lock; a daemon thread renews its heartbeat every ``heartbeat_s`` until :meth:`release`."""

    path: Path
    token: str
    heartbeat_s: float
    info: dict[str, Any]
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _write(self) -> bool:
        """Renew the heartbeat; ``False`` when the lock is no longer ours (another process took it over)."""
        with folder_guard(self.path.parent.parent):
            current = read_lock(self.path)
            if not current or current.get("token") != self.token:
                return False
            self.info["heartbeat"] = time.time()
            atomic_write_json(self.path, self.info)
            return True

    def set_workers(self, pids: list[int]) -> None:
        """Record the worker processes, so a takeover after this process dies waits for them."""
        self.info["workers"] = sorted(int(p) for p in pids)
        self._write()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            if not self._write():
                logger.error(
                    "%s was taken over by another process (this one looked dead: suspended longer than the stale "
                    "time?); stopping now so that two processes never write the same shards",
                    self.path,
                )
                os._exit(LOST_LOCK_EXIT)

    def start(self) -> TaskLock:
        self._thread = threading.Thread(target=self._beat, name="songbloom-lock-heartbeat", daemon=True)
        self._thread.start()
        return self

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with folder_guard(self.path.parent.parent):
            current = read_lock(self.path)
            if current is not None and current.get("token") == self.token:
                self.path.unlink()


def _check_holder(path: Path, stale_after_s: float, wait_workers_s: float) -> None:
    """Refuse a live lock at ``path``; for a stale one, log the takeover and wait for the old workers."""
    info = read_lock(path)
    if info is None:
        return
    now = time.time()
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return
    reason = stale_reason(info, now, stale_after_s, mtime)
    if reason is None:
        raise OutputLocked(
            f"{path.parent.parent}: array task {path.stem.removeprefix('task-')} is being written by "
            f"{_describe(info, now)}. Wait for it to finish, or give this run another --task-index; a lock "
            f"whose process has died is taken over automatically (on another host after {stale_after_s:.0f} s "
            f"without a heartbeat)."
        )
    logger.warning("%s: taking over the lock of %s: %s", path, _describe(info, now), reason)
    _wait_for_workers(info, path, wait_workers_s)


def acquire_task_lock(
    out_dir: str | Path,
    task_index: int,
    *,
    stale_after_s: float = STALE_AFTER_S,
    heartbeat_s: float | None = None,
    wait_workers_s: float = 60.0,
) -> TaskLock:
    """Take the lock of array task ``task_index`` in ``out_dir`` (see the module docstring) or raise
    :class:`OutputLocked` naming the live holder."""
    path = lock_path(out_dir, task_index)
    with folder_guard(out_dir):
        _check_holder(path, stale_after_s, wait_workers_s)
        info = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "task_index": task_index,
            "token": uuid.uuid4().hex,
            "started": time.time(),
            "heartbeat": time.time(),
            "workers": [],
        }
        atomic_write_json(path, info)
    beat = heartbeat_s if heartbeat_s is not None else max(0.5, min(10.0, stale_after_s / 6))
    return TaskLock(path, info["token"], beat, info).start()


def live_locks(out_dir: str | Path, stale_after_s: float = STALE_AFTER_S) -> list[str]:
    """Descriptions of the task locks in ``out_dir`` whose holders still live."""
    found = []
    now = time.time()
    for path in sorted((Path(out_dir) / LOCK_DIR).glob("task-*.lock")):
        info = read_lock(path)
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            continue
        if info is not None and stale_reason(info, now, stale_after_s, mtime) is None:
            found.append(f"{path.name}: {_describe(info, now)}")
    return found
