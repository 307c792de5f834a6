"""Training refuses inputs that do not belong together (codebook, manifest, shards), naming both sides and the
fix, and says what is capped or missing on a small dataset (no validation songs, capped accumulation)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from songbloom.data.preprocess import PreprocessConfig, run_preprocess
from songbloom.data.synthetic import make_synthetic_dataset
from tests.data.standins import ToySketch, toy_encoders
from tests.training.conftest import compose_config, run_flat


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> dict[str, Path]:
    """Toy-encoded shards (fit ``model=tiny``) of three songs, without a validation split, and their manifest."""
    root = tmp_path_factory.mktemp("checked_shards")
    manifest = make_synthetic_dataset(root / "songs", num_songs=3, min_seconds=7.0, max_seconds=9.0, seed=3)
    cfg = PreprocessConfig(out_dir=str(root / "shards"), segment_seconds=6.0, val_fraction=0.0, shard_maxcount=2)
    report = run_preprocess([manifest], cfg, toy_encoders())
    assert report.written > 0 and not report.problems, report.to_json()
    return {"root": root, "shards": root / "shards", "manifest": manifest}


def _train(tmp_path: Path, shards: dict[str, Path], *extra: str) -> Exception | None:
    overrides = [
        f"paths.root_dir={tmp_path}", "model=tiny", "trainer=cpu", "data=shards", "debug=ci", "demo.enabled=false",
        f"data.shards_dir={shards['shards']}", "data.batch_size=2", "data.max_frames=32", "data.shuffle_buffer=2",
        "data.bucket_batches=1", "data.num_workers=0", "trainer.max_steps=1", "export.enabled=false", *extra,
    ]  # fmt: skip
    try:
        run_flat(compose_config(overrides))
    except Exception as e:  # noqa: BLE001 - the refusal is what the tests look at
        return e
    return None


def _other_codebook(path: Path) -> str:
    from songbloom.sketch.artifact import SketchCodebook, build_metadata, save_codebook

    centers, mean, std = torch.randn(64, 4), torch.zeros(4), torch.ones(4)
    meta = build_metadata(centers=centers, mean=mean, std=std, muq_model_id="tiny", muq_fingerprint="x",
                          muq_layer=1, muq_licence="CC-BY-NC-4.0", feature_normalisation="standardize")
    save_codebook(path, SketchCodebook(centers=centers, mean=mean, std=std, metadata=meta))
    return meta["codebook_hash"]


def test_missing_codebook_is_refused(tmp_path, shards):
    err = _train(tmp_path, shards, f"sketch.codebook_path={tmp_path / 'nowhere.safetensors'}")
    assert err is not None, "training started with a codebook file that does not exist"
    msg = str(err)
    assert "nowhere.safetensors does not exist" in msg and ToySketch.codebook_hash in msg and "Fix:" in msg


def test_codebook_other_than_the_shards_one_is_refused(tmp_path, shards):
    other = _other_codebook(tmp_path / "other.safetensors")
    err = _train(tmp_path, shards, f"sketch.codebook_path={tmp_path / 'other.safetensors'}")
    assert err is not None, "training started with a codebook other than the shards' one"
    msg = str(err)
    assert other in msg and ToySketch.codebook_hash in msg and "re-encode" in msg


def test_manifest_that_does_not_match_the_shards_is_refused(tmp_path, shards):
    other = make_synthetic_dataset(tmp_path / "other", num_songs=2, min_seconds=7.0, max_seconds=8.0, seed=9)
    lines = [json.loads(x) for x in other.read_text().splitlines()]
    for i, rec in enumerate(lines):
        rec["idx"] = f"another_{i}"
    other.write_text("".join(json.dumps(r) + "\n" for r in lines))
    err = _train(tmp_path, shards, f"data.manifest={other}")
    assert err is not None, "training started with a manifest the shards were not made from"
    msg = str(err)
    assert str(other) in msg and str(shards["shards"]) in msg and "another_0" in msg and "Fix:" in msg
    assert _train(tmp_path, shards, f"data.manifest={shards['manifest']}", "run_name=matching") is None


def test_no_validation_and_capped_accumulation_are_reported(tmp_path, shards, caplog):
    with caplog.at_level(logging.WARNING):
        err = _train(tmp_path, shards, "data.batches_per_epoch=2", "trainer.accumulate_grad_batches=8")
    assert err is None, err
    assert "no validation songs" in caplog.text and "selected by step" in caplog.text, caplog.text
    assert "effective batch 4" in caplog.text and "instead of 16" in caplog.text, caplog.text
