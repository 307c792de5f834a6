"""Loader workers exit when the rank that owns them is killed (forkserver workers are not its children, so
torch's parent-alive watchdog cannot see it; without this they and the forkserver linger forever)."""

from __future__ import annotations

import subprocess
import sys

from tests.training.conftest import REPO_ROOT


def test_worker_exits_when_its_owner_is_killed():
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\n"
            "from songbloom.data.streams import exit_with_owner\n"
            f"exit_with_owner({owner.pid}, interval_s=0.1)\n"
            "time.sleep(120)\n"
            "raise SystemExit(3)\n",
        ],
        cwd=REPO_ROOT,
    )
    try:
        owner.kill()
        owner.wait()
        assert watcher.wait(timeout=100) == 0
    finally:
        for p in (owner, watcher):
            if p.poll() is None:
                p.kill()
