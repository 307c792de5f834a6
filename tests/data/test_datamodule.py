"""Streaming datamodule: batch layout, block-aligned crops with their lyrics, seeding, resume, validation split,
few shards, and damaged shards."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
import torch

from songbloom.data.datamodule import DataConfig, SongBloomDataModule, TrainShardStream, ValShardStream
from songbloom.data.lyrics import crop_sections, sections_to_lyrics
from songbloom.data.manifest import read_manifest
from songbloom.data.shards import decode_sample, iter_tar_samples, load_index, verify_shards
from songbloom.text.vocab import Vocabulary

EOS = 64  # the toy codebook has 64 codes, so num_pitch (= eos id) is 64


def _dm(shards, **kw) -> SongBloomDataModule:
    opts = dict(
        shards_dir=str(shards), batch_size=2, num_workers=0, max_frames=64, shuffle_buffer=4, batches_per_epoch=4
    )
    opts.update(kw)
    dm = SongBloomDataModule(**opts)
    dm.setup("fit")
    return dm


def _samples_by_key(shards) -> dict:
    return {
        s["meta"]["key"]: s
        for s in (decode_sample(r) for r in iter_tar_samples(sorted(map(str, shards.glob("*.tar")))))
    }


def test_train_batches_layout_crops_and_lyrics(synthetic_manifest, synthetic_shards):
    dm = _dm(synthetic_shards)
    assert dm.eos_id == EOS and dm.seconds_per_tag == 1.0
    batches = list(dm.train_dataloader())
    assert len(batches) == 4
    stored = _samples_by_key(synthetic_shards)
    records = {r.idx: r for r in read_manifest(synthetic_manifest)[0]}
    vocab = Vocabulary.default()
    for b in batches:
        bsz, d, t = b["x_latent"].shape
        assert (bsz, d) == (2, 8) and b["x_latent"].dtype == torch.float32
        assert b["x_latent_scale"].shape == (2, 8, t) and b["x_sketch"].shape == (2, t)
        assert b["x_sketch"].dtype == torch.long and b["x_len"].dtype == torch.long
        assert t == int(b["x_len"].max()) and (b["x_len"] % 16 == 0).all() and (b["x_len"] <= 64).all()
        assert b["prompt_latent"].shape == (2, 8, 250) and b["prompt_latent_scale"].shape == (2, 8, 250)
        assert (b["prompt_len"] == 250).all()
        assert isinstance(b["lyric_ids"], list) and all(isinstance(i, int) for ids in b["lyric_ids"] for i in ids)
        assert b["lyric_len"].tolist() == [len(x) for x in b["lyric_ids"]]
        for i, key in enumerate(b["key"]):
            n, c = int(b["x_len"][i]), int(b["crop_start"][i])
            assert c % 16 == 0
            s = stored[key]
            np.testing.assert_array_equal(b["x_latent"][i, :, :n].numpy(), s["latent_mean"][:, c : c + n])
            np.testing.assert_array_equal(b["x_sketch"][i, :n].numpy(), s["sketch"][c : c + n])
            assert (b["x_sketch"][i, n:] == EOS).all() and (b["x_latent"][i, :, n:] == 0).all()
            np.testing.assert_array_equal(b["prompt_latent"][i].numpy(), s["prompt_mean"])
            # the lyrics are those sung inside the cropped window
            t0 = s["meta"]["start_s"] + c / 25.0
            window = crop_sections(records[s["meta"]["idx"]].sections, t0, t0 + n / 25.0)
            assert b["lyric_ids"][i] == vocab.tokenize(sections_to_lyrics(window, 1.0)).ids


def test_epochs_reseed_and_state_resumes(synthetic_shards):
    dm = _dm(synthetic_shards)
    loader = dm.train_dataloader()
    e0 = [b["key"] + b["crop_start"].tolist() for b in loader]
    e1 = [b["key"] + b["crop_start"].tolist() for b in loader]
    assert e0 != e1
    state = dm.state_dict()
    assert state["epoch"] == 2 and state["seed"] == 0
    e2 = [b["key"] + b["crop_start"].tolist() for b in loader]
    resumed = _dm(synthetic_shards)
    resumed.load_state_dict(state)
    assert [b["key"] + b["crop_start"].tolist() for b in resumed.train_dataloader()] == e2
    fresh = _dm(synthetic_shards)
    assert [b["key"] + b["crop_start"].tolist() for b in fresh.train_dataloader()] == e0


def test_validation_is_finite_split_by_sample_and_equal_across_ranks(synthetic_shards):
    index = load_index(synthetic_shards)
    n_val = index["splits"]["val"]["num_samples"]
    urls = [str(synthetic_shards / s["name"]) for s in index["splits"]["val"]["shards"]]
    cfg = DataConfig(shards_dir=str(synthetic_shards), batch_size=2, max_frames=64)
    seen, counts = [], []
    for world in (2, 3):
        per_rank = []
        for rank in range(world):
            batches = list(ValShardStream(urls, n_val, cfg, 1.0, EOS, rank=rank, world_size=world))
            per_rank.append(len(batches))
            seen += [k for b in batches for k in b["key"]]
            assert all((b["crop_start"] == 0).all() for b in batches)
        counts.append(per_rank)
        assert len(set(per_rank)) == 1, per_rank
    assert set(seen) == {
        s["meta"]["key"] for s in _samples_by_key(synthetic_shards).values() if s["meta"]["split"] == "val"
    }
    dm = _dm(synthetic_shards, num_workers=2)
    assert sum(len(b["key"]) for b in dm.val_dataloader()) == n_val


def test_one_shard_feeds_every_rank_and_worker(one_shard_dir, caplog):
    urls = [str(p) for p in one_shard_dir.glob("train-*.tar")]
    assert len(urls) == 1
    cfg = DataConfig(shards_dir=str(one_shard_dir), batch_size=2, max_frames=64, shuffle_buffer=2, num_workers=2)
    for rank in range(2):
        ds = TrainShardStream(urls, cfg, 1.0, EOS, batches_per_epoch=5, rank=rank, world_size=2)
        loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
        assert len(list(loader)) == 5
    with caplog.at_level(logging.INFO):
        _dm(one_shard_dir, num_workers=2)
    assert "resample" in caplog.text


def test_truncated_shard_is_reported_and_the_rest_still_reads(tmp_path, synthetic_shards, caplog):
    bad = tmp_path / "bad"
    shutil.copytree(synthetic_shards, bad)
    victim = sorted(bad.glob("train-*.tar"))[0]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2 + 100])
    problems = verify_shards(bad)
    assert len(problems) == 1 and problems[0]["file"] == str(victim) and "read" in problems[0]["reason"]
    urls = [str(victim)] + [str(p) for p in sorted(bad.glob("train-*.tar"))[1:]]
    cfg = DataConfig(shards_dir=str(bad), batch_size=2, max_frames=64, shuffle_buffer=2)
    with caplog.at_level(logging.WARNING):
        batches = list(TrainShardStream(urls, cfg, 1.0, EOS, batches_per_epoch=6, rank=0, world_size=1))
    assert len(batches) == 6
    assert "damaged shard" in caplog.text


def test_all_shards_unreadable_is_an_error_not_a_hang(tmp_path):
    junk = tmp_path / "train-x-000000.tar"
    junk.write_bytes(b"not a tar" * 100)
    cfg = DataConfig(shards_dir=str(tmp_path), batch_size=2)
    with pytest.raises(RuntimeError, match="no readable samples"):
        list(TrainShardStream([str(junk)], cfg, 1.0, EOS, batches_per_epoch=1, rank=0, world_size=1))


def test_length_bucketing_reduces_padding(synthetic_shards):
    def padding(bucket_batches: int) -> float:
        dm = _dm(
            synthetic_shards, max_frames=10_000, batches_per_epoch=24, bucket_batches=bucket_batches, shuffle_buffer=2
        )
        pads = [
            1 - b["x_len"].sum().item() / b["x_len"].numel() / b["x_len"].max().item() for b in dm.train_dataloader()
        ]
        return float(np.mean(pads))

    assert padding(4) < padding(1)
