"""Process liveness on this host, and child processes that exit when the process that owns them is gone.

Used by the training loader workers (:mod:`songbloom.data.streams`) and the preprocessing workers
(:mod:`songbloom.data.preprocess`): a worker whose owner was SIGKILLed (the OOM killer, a preemption) would
otherwise run on as an orphan and keep writing.
"""

from __future__ import annotations

import os
import threading
import time

_OWNER_WATCH: dict[str, int] = {}  # per process: the owner pid its watchdog thread follows


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a zombie, dead but not yet reaped, counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):  # no /proc (macOS): trust kill()
        return True
    return state not in ("Z", "X")


def exit_with_owner(owner_pid: int, interval_s: float = 2.0) -> None:
    """Exit this process (``os._exit(0)``) as soon as process ``owner_pid`` is gone; checked every ``interval_s``.

    A forkserver worker is a child of the forkserver, not of its owner, so torch's own watchdog (is my parent
    alive?) never notices a SIGKILLed rank; a spawned preprocessing worker busy with its share of songs never
    looks at its parent at all. Both would linger and keep working after a kill. When the owner is this process's
    parent, a changed parent pid also counts as gone (the pid itself may be reused). Started once per process
    (a daemon thread); ``interval_s`` bounds how long an orphan lives on.
    """
    if _OWNER_WATCH.get("pid") == owner_pid or os.getpid() == owner_pid:
        return
    _OWNER_WATCH["pid"] = owner_pid
    is_parent = os.getppid() == owner_pid

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            if (is_parent and os.getppid() != owner_pid) or not pid_alive(owner_pid):
                os._exit(0)

    threading.Thread(target=watch, name="songbloom-owner-watch", daemon=True).start()
