"""Licences travel from manifests to the shard index, training checkpoints and exports; non-commercial warns."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from songbloom.data.manifest import read_manifest, write_manifest
from songbloom.data.preprocess import PreprocessConfig, run_preprocess
from songbloom.data.synthetic import make_synthetic_dataset
from songbloom.licences import (
    CHECKPOINT_KEY,
    canonical_licence,
    data_licences,
    licence_record,
    merge_licences,
    non_commercial,
    sketch_codebook_licences,
    warn_if_non_commercial,
)
from songbloom.training.run_licences import training_licences
from tests.data.standins import SHARD_KW, toy_encoders

MUQ_META = {"muq_licence": "CC-BY-NC-4.0", "muq_model_id": "OpenMuQ/MuQ-large-msd-iter"}


def test_records_merge_and_classification():
    assert canonical_licence("jaCappella corpus licence") == "jaCappella-research"
    assert canonical_licence("CC0-1.0 (synthetic)") == "CC0-1.0"
    assert canonical_licence(None) == "unknown" and canonical_licence("My Own Terms") == "My Own Terms"
    assert licence_record("x", "cc-by-4.0")["commercial"] is True
    assert licence_record("x", "My Own Terms")["commercial"] is False  # unrecognised: not cleared
    data = data_licences([("a", "CC0-1.0"), ("a", "CC0-1.0"), ("b", "jaCappella"), ("c", None)])
    assert {(r["licence"], r["items"]) for r in data} == {("CC0-1.0", 1), ("jaCappella-research", 1), ("unknown", 1)}
    merged = merge_licences(data, data_licences([("d", "CC0-1.0")]), sketch_codebook_licences(MUQ_META))
    cc0 = next(r for r in merged if r["licence"] == "CC0-1.0")
    assert cc0["items"] == 2 and cc0["commercial"] is True
    muq = next(r for r in merged if r["name"].startswith("MuQ"))
    assert muq["licence"] == "CC-BY-NC-4.0" and muq["url"].endswith("OpenMuQ/MuQ-large-msd-iter")
    assert {r["licence"] for r in non_commercial(merged)} == {"jaCappella-research", "unknown", "CC-BY-NC-4.0"}
    with pytest.raises(ValueError, match="lacks"):
        merge_licences([{"name": "x"}])


def test_warning_names_each_non_commercial_input(caplog):
    recs = merge_licences(sketch_codebook_licences(MUQ_META), licence_record("training data", "CC0-1.0", items=3))
    with caplog.at_level(logging.WARNING, logger="songbloom.licences"):
        bad = warn_if_non_commercial(recs, "export X")
    assert len(bad) == 1 and "export X is NOT cleared for commercial use" in caplog.text
    assert "CC-BY-NC-4.0 (non-commercial)" in caplog.text
    caplog.clear()
    assert warn_if_non_commercial([licence_record("d", "CC0-1.0")], "export Y") == [] and not caplog.text


def test_manifest_accepts_both_spellings(tmp_path):
    m = tmp_path / "m.jsonl"
    rows = [
        {"idx": "a", "audio_path": "a.wav", "lyrics": "[verse] a", "licence": "CC-BY-4.0"},
        {"idx": "b", "audio_path": "b.wav", "lyrics": "[verse] a", "license": "CC0-1.0"},
        {"idx": "c", "audio_path": "c.wav", "lyrics": "[verse] a", "license": "CC0-1.0", "licence": "MIT"},
    ]
    write_manifest(rows, m)
    recs, problems = read_manifest(m)
    assert [r.license for r in recs] == ["CC-BY-4.0", "CC0-1.0"]
    assert len(problems) == 1 and problems[0].field == "licence" and problems[0].line == 3


@pytest.fixture(scope="module")
def licensed_shards(tmp_path_factory) -> Path:
    """Three synthetic songs: one jaCappella, one without a licence, one CC0; sketch tokens 'from MuQ'."""
    root = tmp_path_factory.mktemp("lic")
    manifest = make_synthetic_dataset(root / "data", num_songs=3, min_seconds=7.0, max_seconds=8.0, seed=2)
    rows = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]
    rows[0]["license"] = "jaCappella corpus licence"
    rows[1].pop("license", None)
    write_manifest(rows, manifest)
    enc = toy_encoders()
    enc.sketch.tokenizer = SimpleNamespace(metadata=MUQ_META)  # what SketchTokenizerEncoder exposes
    enc.latent.licences = [licence_record("VAE weights used for the latents (vae.ckpt)", None)]  # as from_files sets
    out = root / "shards"
    report = run_preprocess([manifest], PreprocessConfig(out_dir=str(out), **SHARD_KW), enc)
    assert report.written > 0 and not report.problems
    return out


def test_shard_index_records_data_and_muq_licences(licensed_shards):
    index = json.loads((licensed_shards / "index.json").read_text(encoding="utf-8"))
    by_licence = {r["licence"]: r for r in index["licences"]}
    assert by_licence["jaCappella-research"]["items"] == 1 and by_licence["unknown"]["items"] == 1
    assert by_licence["CC0-1.0"]["items"] == 1 and by_licence["CC0-1.0"]["commercial"] is True
    assert by_licence["CC-BY-NC-4.0"]["name"].startswith("MuQ weights")
    assert any(r["name"].startswith("VAE weights") and r["licence"] == "unknown" for r in index["licences"])
    # what a training run on these shards inherits, starting from the release weights
    recs = training_licences(shards_dir=licensed_shards, init_source="release", init_description="songbloom_full_150s")
    names = [r["name"] for r in recs]
    assert any(n.startswith("SongBloom base weights (songbloom_full_150s)") for n in names)
    assert len(non_commercial(recs)) == 5  # jaCappella, unknown data, MuQ, VAE and base weights of unknown terms


def test_training_checkpoint_and_export_record_licences(licensed_shards, tmp_path, caplog):
    from tests.training.conftest import TINY_CPU, compose_config, run_flat

    overrides = [o for o in TINY_CPU if not o.startswith("data")] + [
        "data=shards",
        f"data.shards_dir={licensed_shards}",
        "data.num_workers=0",
        "data.batch_size=1",
        "data.max_frames=64",
        "data.shuffle_buffer=1",
        "data.bucket_batches=1",
    ]
    cfg = compose_config([f"paths.root_dir={tmp_path}", *overrides])
    with caplog.at_level(logging.WARNING, logger="songbloom.licences"):
        result = run_flat(cfg)
    ck = torch.load(result["checkpoint"], weights_only=True, map_location="cpu")
    licences = {r["licence"] for r in ck[CHECKPOINT_KEY]}
    assert {"jaCappella-research", "CC-BY-NC-4.0", "CC0-1.0", "unknown"} <= licences
    exported = json.loads((Path(result["run_dir"]) / "export" / "config.json").read_text(encoding="utf-8"))
    assert exported["licences"] == ck[CHECKPOINT_KEY]
    assert "NOT cleared for commercial use" in caplog.text and "jaCappella-research" in caplog.text


def test_converters_fill_the_licence(tmp_path):
    import numpy as np
    import soundfile as sf

    from songbloom.data.convert import convert_folder

    folder = tmp_path / "mine"
    folder.mkdir()
    sf.write(folder / "a.wav", np.zeros(48000, dtype=np.float32), 48000)
    (folder / "a.txt").write_text("hello there\n", encoding="utf-8")
    recs, _ = read_manifest(convert_folder(folder, tmp_path / "u.jsonl")[0])
    assert recs[0].license == "unknown"
    recs, _ = read_manifest(convert_folder(folder, tmp_path / "c.jsonl", license="CC-BY-4.0")[0])
    assert recs[0].license == "CC-BY-4.0"


def test_unreadable_codebook_still_records_muq(tmp_path, caplog):
    bad = tmp_path / "codebook.safetensors"
    bad.write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="songbloom.licences"):
        recs = training_licences(data_kind="synthetic", codebook_path=bad)
    assert any(r["licence"] == "CC-BY-NC-4.0" and r["name"].startswith("MuQ") for r in recs)
    assert "unreadable" in caplog.text


def test_vae_from_files_carries_its_licence(tmp_path):
    from songbloom.data.encoders import VAELatentEncoder
    from songbloom.models.vae import OobleckVAE, VAEConfig

    cfg = VAEConfig.tiny()
    cfg.to_json(tmp_path / "vae.json")
    torch.save({"state_dict": OobleckVAE(cfg).state_dict()}, tmp_path / "vae.ckpt")
    enc = VAELatentEncoder.from_files(tmp_path / "vae.json", tmp_path / "vae.ckpt")
    assert [r["licence"] for r in enc.licences] == ["unknown"] and "vae.ckpt" in enc.licences[0]["name"]
