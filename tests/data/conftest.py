"""Shared fixtures of the data tests: one small synthetic dataset and its shards, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from songbloom.data.preprocess import PreprocessConfig, run_preprocess
from songbloom.data.synthetic import make_synthetic_dataset
from tests.data.standins import SHARD_KW, toy_encoders


@pytest.fixture(scope="session")
def synthetic_manifest(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    return make_synthetic_dataset(root, num_songs=6, min_seconds=9.0, max_seconds=14.0, seed=1)


@pytest.fixture(scope="session")
def synthetic_shards(tmp_path_factory, synthetic_manifest) -> Path:
    """Shards of the synthetic set: 6 s segments, 1/3 of songs held out, 2 samples per shard (many shards)."""
    out = tmp_path_factory.mktemp("shards")
    cfg = PreprocessConfig(out_dir=str(out), **SHARD_KW)
    report = run_preprocess([synthetic_manifest], cfg, toy_encoders())
    assert report.written > 0 and not report.problems, report.to_json()
    return out


@pytest.fixture(scope="session")
def one_shard_dir(tmp_path_factory, synthetic_shards) -> Path:
    """The same samples as ``synthetic_shards`` but in one train shard and one val shard."""
    import shutil

    from songbloom.data.preprocess import write_index
    from songbloom.data.shards import ResumableShardWriter, iter_tar_samples

    out = tmp_path_factory.mktemp("one_shard")
    shutil.copy(synthetic_shards / "provenance.json", out / "provenance.json")
    for split in ("train", "val"):
        urls = sorted(str(p) for p in synthetic_shards.glob(f"{split}-*.tar"))
        with ResumableShardWriter(out, f"{split}-t0000-w00", maxcount=1000) as w:
            for raw in iter_tar_samples(urls):
                meta = __import__("json").loads(raw["meta.json"])
                w.write(
                    raw,
                    {k: meta[k] for k in ("key", "idx", "song_id", "segment", "num_segments", "duration_s", "frames")},
                )
    write_index(out)
    return out
