"""Stand-in for ``scripts/preprocess.py`` in the SLURM array test: one manifest chunk per array task.

Like the real script it takes its chunk from ``SLURM_ARRAY_TASK_ID``/``SLURM_ARRAY_TASK_COUNT`` (or
``--task-index``/``--num-tasks``) and writes only its own outputs, so tasks never touch each other's files.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("manifest")
    ap.add_argument("--out", required=True)
    ap.add_argument("--task-index", type=int, default=int(os.environ.get("SLURM_ARRAY_TASK_ID", "0")))
    ap.add_argument("--num-tasks", type=int, default=int(os.environ.get("SLURM_ARRAY_TASK_COUNT", "1")))
    a = ap.parse_args()
    lines = [json.loads(x) for x in Path(a.manifest).read_text().splitlines() if x.strip()]
    mine = lines[a.task_index :: a.num_tasks]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".chunk-{a.task_index:03d}.jsonl.tmp"
    tmp.write_text("".join(json.dumps({**rec, "task": a.task_index}) + "\n" for rec in mine))
    os.replace(tmp, out / f"chunk-{a.task_index:03d}.jsonl")
    print(f"[preprocess] task {a.task_index}/{a.num_tasks}: {len(mine)} items", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
