"""Running ``../shared/tools/official_bench/pair.py`` from a benchmark, and the contention probe both sides use.

pair.py alternates fresh processes (official, ours, official, ours), drops repetitions other processes
disturbed and prints each arm's median; :func:`run_pair` runs it and reads those medians back, so a
benchmark can print the same-run ratio next to its own figures.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from pathlib import Path

PAIR_SCRIPT = (Path(__file__).resolve().parents[1] / ".." / "shared" / "tools" / "official_bench" / "pair.py").resolve()


def pair_command(part: str, official_python: str, upstream: str, ours: list[str], *extra: str,
                 pair_script: Path = PAIR_SCRIPT) -> list[str]:  # fmt: skip
    cmd = [sys.executable, str(pair_script), "--part", part, "--official-python", official_python,
           "--upstream", upstream, *extra]  # fmt: skip
    for c in ours:
        cmd += ["--ours", c]
    return cmd


def run_pair(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, list[float]]:
    """Run pair.py (output passed through as it comes); return (official median, each --ours median in order)."""
    print("$ " + " ".join(cmd), flush=True)
    lines = []
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) as p:
        for line in p.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            lines.append(line)
    if p.returncode:
        sys.exit(f"pair.py failed ({p.returncode})")
    return parse_pair_output("".join(lines))


def parse_pair_output(text: str) -> tuple[float, list[float]]:
    """pair.py's summary lines: ``...; train: official 3.412 s`` and ``  ours[0] 2.301 s -> 1.48x ...``."""
    found = re.search(r": official ([0-9.]+) s$", text, flags=re.M)
    if found is None:
        raise ValueError(f"no official median in pair.py's output:\n{text[-2000:]}")
    ours = [float(m) for m in re.findall(r"^\s+ours\[\d+\] ([0-9.]+) s ->", text, flags=re.M)]
    return float(found.group(1)), ours


def cpu_snap() -> tuple[int, float]:
    """(busy jiffies of the whole machine, own CPU seconds), as official_part.py takes them."""
    with open("/proc/stat") as f:
        v = list(map(int, f.readline().split()[1:]))
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return sum(v[:8]) - v[3] - v[4], ru.ru_utime + ru.ru_stime


def foreign_cpu(a: tuple[int, float], b: tuple[int, float]) -> float:
    """CPU-seconds other processes used between two snapshots (pair.py drops repetitions where it is >= 10%)."""
    return max(0.0, (b[0] - a[0]) / os.sysconf("SC_CLK_TCK") - (b[1] - a[1]))
