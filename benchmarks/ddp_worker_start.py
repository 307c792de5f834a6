#!/usr/bin/env python
"""Seconds per training pass of two spawn-started gloo ranks with 2 loader workers each (CPU).

Issue 7: such ranks looked hung. Every pass starts fresh workers (persistent_workers=False: each epoch reseeds
its stream), and under a process group they start with forkserver. Before the fix each worker imported Lightning
(and, through it, torchmetrics and transformers) to unpickle its stream; now the forkserver preloads the
Lightning-free ``songbloom.data.streams`` once and workers start as forks. Run it from the tree to measure:

    python benchmarks/ddp_worker_start.py <shards_dir> --passes 3
"""

from __future__ import annotations

import argparse
import datetime
import os
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

REPO = Path(__file__).resolve().parents[1]


def _rank(rank: int, world: int, shards: str, passes: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    from songbloom.data.datamodule import SongBloomDataModule

    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=900)
    )
    try:
        dm = SongBloomDataModule(
            shards_dir=shards, batch_size=2, num_workers=2, max_frames=64, shuffle_buffer=2, batches_per_epoch=2
        )
        dm.setup("fit")
        loader = dm.train_dataloader()
        times = []
        for _ in range(passes):
            t0 = time.perf_counter()
            for _batch in loader:
                dist.all_reduce(torch.ones(1))
            times.append(time.perf_counter() - t0)
        Path(out_dir, f"rank{rank}.txt").write_text(" ".join(f"{t:.1f}" for t in times))
    finally:
        dist.destroy_process_group()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("shards_dir")
    ap.add_argument("--passes", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_rank, args=(2, args.shards_dir, args.passes, os.path.join(tmp, "init"), tmp), nprocs=2, join=True)
        rows = [Path(tmp, f"rank{r}.txt").read_text().split() for r in range(2)]
    print("| pass | rank 0 (s) | rank 1 (s) |\n|---|---|---|")
    for i, (a, b) in enumerate(zip(*rows, strict=True)):
        print(f"| {i} | {a} | {b} |")


if __name__ == "__main__":
    main()
