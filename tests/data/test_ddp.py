"""Two CPU DDP ranks (gloo) get the same number of batches, with one shard and with many, with 0 and with 2 loader
workers per rank (workers of a spawn-started rank once took minutes per epoch to start: issue 7)."""

from __future__ import annotations

import json

import torch.multiprocessing as mp

from songbloom.data.shards import load_index
from tests.data.standins import ddp_count_batches

WORKERS = (0, 2)


def test_two_ranks_get_equal_batch_counts(tmp_path, one_shard_dir, synthetic_shards):
    assert len(load_index(one_shard_dir)["splits"]["train"]["shards"]) == 1  # fewer shards than ranks x workers
    dirs = [str(one_shard_dir), str(synthetic_shards)]
    mp.spawn(ddp_count_batches, args=(2, dirs, str(tmp_path / "init"), str(tmp_path), WORKERS), nprocs=2, join=True)
    counts = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert counts[0] == counts[1]
    for w in WORKERS:
        for d in dirs:
            n_train = load_index(d)["splits"]["train"]["num_samples"]
            assert counts[0][f"{d}:train:w{w}"] == max(1, n_train // (2 * 2))
            assert counts[0][f"{d}:val:w{w}"] >= 1
