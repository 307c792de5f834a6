"""Mid-epoch resume of the shard stream without a trainer: a loader restored after k consumed batches yields
exactly the rest of the epoch (in order, over 0, 2 and 3 workers), then the same next epoch."""

from __future__ import annotations

import pytest

from songbloom.data.datamodule import SongBloomDataModule


def _dm(shards, workers: int) -> SongBloomDataModule:
    dm = SongBloomDataModule(
        shards_dir=str(shards), batch_size=2, num_workers=workers, max_frames=64, shuffle_buffer=2, batches_per_epoch=5
    )
    dm.setup("fit")
    return dm


def _ids(loader) -> list[tuple]:
    return [tuple(b["key"]) + tuple(b["crop_start"].tolist()) for b in loader]


@pytest.mark.parametrize("workers", [0, 2, 3])
def test_resumed_loader_yields_the_rest_of_the_epoch(synthetic_shards, workers: int):
    straight = _dm(synthetic_shards, workers).train_dataloader()
    epoch0, epoch1 = _ids(straight), _ids(straight)
    assert len(epoch0) == 5 and len(set(epoch0)) > 1 and epoch0 != epoch1
    for consumed in (1, 2, 4, 5):
        dm = _dm(synthetic_shards, workers)
        dm.load_state_dict({"epoch": 0, "batches_consumed": consumed, "seed": 0, "num_workers": workers})
        loader = dm.train_dataloader()
        assert _ids(loader) == epoch0[consumed:], consumed
        assert _ids(loader) == epoch1, consumed


def test_state_outside_a_fit_points_at_the_next_epoch(synthetic_shards):
    dm = _dm(synthetic_shards, 0)
    _ids(dm.train_dataloader())
    state = dm.state_dict()
    assert (state["epoch"], state["batches_consumed"]) == (1, 0)
