#!/usr/bin/env python
"""What the memory plan's line costs at the start of a training run: the first (uncached) ``estimate`` of each
preset, in one fresh process per preset after the imports a run has already paid (``songbloom.training.run``,
peft). Prints a Markdown table. Run it from the tree:

    python benchmarks/plan_cost.py --experiment full_finetune lora_150s_24gb full_240s_80gb

No preset names: every ``conf/memory/*.yaml``. ``python -m songbloom.plan`` costs this plus the interpreter's
start and those imports (measure it with ``time``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import sys, time
import peft, songbloom.training.run  # what a run has imported before it logs the plan
from songbloom.config.run import parse_run_config
from songbloom.plan import estimate
from songbloom.plan.compose import compose_run_config
rc = parse_run_config(compose_run_config(sys.argv[1:], None))
start = time.perf_counter()
plan = estimate(rc)
print(f"COST {time.perf_counter() - start:.2f} {plan.total / 1e9:.2f}")
"""


def _one(experiment: str, preset: str) -> tuple[str, str]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    args = [sys.executable, "-c", CHILD, f"experiment={experiment}", f"memory={preset}"]
    out = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("COST "))
    seconds, gb = line.split()[1:]
    return seconds, gb


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("presets", nargs="*")
    p.add_argument("--experiment", default="full_finetune")
    a = p.parse_args()
    presets = a.presets or sorted(f.stem for f in (ROOT / "conf" / "memory").glob("*.yaml"))
    load = os.getloadavg()[0]
    print(f"| preset | first estimate (s), load {load:.1f} | estimate per GPU (GB) |\n|---|---|---|")
    for preset in presets:
        seconds, gb = _one(a.experiment, preset)
        print(f"| `{preset}` | {seconds} | {gb} |", flush=True)


if __name__ == "__main__":
    main()
