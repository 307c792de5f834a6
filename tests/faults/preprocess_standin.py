"""One preprocessing task with the toy encoders, slowed down so a test can kill it mid-run.

``python -m tests.faults.preprocess_standin MANIFEST OUT TASK_INDEX NUM_TASKS WORKERS DELAY_S``; the encoder
factory is picklable, so the spawned workers build their own (slow) encoders.
"""

from __future__ import annotations

import functools
import sys
import time

import torch

from songbloom.data.encoders import Encoders
from songbloom.data.preprocess import PreprocessConfig, run_preprocess
from tests.data.standins import ToyVAE, toy_encoders

# 1-2 s songs: one segment each; 4 samples per shard, so a 100-song run publishes ~25 shards one after another.
SETTINGS = dict(segment_seconds=6.0, val_fraction=0.2, split_seed=1, shard_maxcount=4)


class SlowVAE(ToyVAE):
    """The toy VAE (same fingerprint, so same provenance) taking ``delay`` seconds per call."""

    def __init__(self, delay: float):
        super().__init__()
        self.delay = delay

    def encode_moments(self, wav: torch.Tensor):
        time.sleep(self.delay)
        return super().encode_moments(wav)


def slow_toy_encoders(delay: float) -> Encoders:
    enc = toy_encoders()
    enc.latent = SlowVAE(delay)
    return enc


def main(argv: list[str]) -> int:
    manifest, out, task_index, num_tasks, workers, delay = argv
    cfg = PreprocessConfig(out_dir=out, **SETTINGS)
    factory = functools.partial(slow_toy_encoders, float(delay))
    report = run_preprocess([manifest], cfg, factory, int(task_index), int(num_tasks), int(workers))
    print(f"landed {report.landed} skipped {len(report.problems)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
