"""Two CPU DDP ranks (gloo) get the same number of batches, with one shard and with many."""

from __future__ import annotations

import json

import torch.multiprocessing as mp

from songbloom.data.shards import load_index
from tests.data.standins import ddp_count_batches


def test_two_ranks_get_equal_batch_counts(tmp_path, one_shard_dir, synthetic_shards):
    assert len(load_index(one_shard_dir)["splits"]["train"]["shards"]) == 1  # fewer shards than ranks
    dirs = [str(one_shard_dir), str(synthetic_shards)]
    mp.spawn(ddp_count_batches, args=(2, dirs, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    counts = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert counts[0] == counts[1]
    for d in dirs:
        n_train = load_index(d)["splits"]["train"]["num_samples"]
        assert counts[0][f"{d}:train"] == max(1, n_train // (2 * 2))
        assert counts[0][f"{d}:val"] >= 1
