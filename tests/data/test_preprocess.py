"""Preprocessing to shards: contents and provenance, crash-safe resume, task splitting, and write-time checks."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from songbloom.data.lyrics import crop_sections, sections_to_lyrics
from songbloom.data.manifest import read_manifest
from songbloom.data.preprocess import PreprocessConfig, ProvenanceMismatch, _prompt_window, resolve_task, run_preprocess
from songbloom.data.shards import completed_shards, decode_sample, iter_tar_samples, load_index
from songbloom.text.vocab import Vocabulary
from tests.data.standins import SHARD_KW, ToyVAE, toy_encoders

REPO = Path(__file__).resolve().parents[2]


def _all_samples(out: Path) -> list[dict]:
    urls = sorted(str(p) for p in out.glob("*.tar"))
    return [decode_sample(r) for r in iter_tar_samples(urls)]


def test_shards_hold_validated_samples_with_provenance(synthetic_manifest, synthetic_shards):
    index = load_index(synthetic_shards)
    prov = index["provenance"]
    assert prov["vae"]["fingerprint"] == ToyVAE().fingerprint and prov["vae"]["downsampling_ratio"] == 1920
    assert prov["sketch"] == {"codebook_hash": "toy-sketch-v1", "num_codes": 64}
    assert prov["lyrics"]["fingerprint"].startswith("phoneme-passthrough:") and len(prov["hash"]) == 64
    assert prov["config"]["segment_seconds"] == 6.0 and prov["config"]["seconds_per_tag"] == 1.0
    assert set(index["splits"]) == {"train", "val"}
    assert sum(len(s["shards"]) for s in index["splits"].values()) >= 4

    records, _ = read_manifest(synthetic_manifest)
    by_idx = {r.idx: r for r in records}
    samples = _all_samples(synthetic_shards)
    assert len(samples) == sum(s["num_samples"] for s in index["splits"].values())
    vocab = Vocabulary.default()
    frames_per_song: Counter = Counter()
    splits_per_song: dict[str, set] = {}
    for s in samples:
        meta, d = s["meta"], s["latent_mean"].shape[0]
        assert s["latent_mean"].dtype == np.float32 and s["latent_mean"].shape == (8, meta["frames"])
        assert s["latent_scale"].shape == s["latent_mean"].shape and (s["latent_scale"] > 0).all()
        assert s["sketch"].shape == (meta["frames"],) and s["sketch"].max() < 64
        assert meta["frames"] <= 150 and d == 8  # 6 s segments at 25 Hz
        assert s["prompt_mean"].shape == (8, 250) and meta["prompt"]["seconds"] == 10.0
        assert "prompt.flac" in s and "__key__" in s and "." not in s["__key__"]
        frames_per_song[meta["idx"]] += meta["frames"]
        splits_per_song.setdefault(meta["song_id"], set()).add(meta["split"])
        # lyrics of a segment are the sections sung inside it, tags expanded at 1 s per tag
        rec = by_idx[meta["idx"]]
        window = crop_sections(rec.sections, meta["start_s"], meta["start_s"] + meta["duration_s"])
        assert s["lyric_ids"].tolist() == vocab.tokenize(sections_to_lyrics(window, 1.0)).ids
    for idx, rec in by_idx.items():  # no audio lost between segments
        info = sf.info(rec.audio_path)
        assert frames_per_song[idx] == int(info.frames * 48000 / info.samplerate) // 1920
    assert all(len(v) == 1 for v in splits_per_song.values())  # a song never straddles train/val


def test_prompt_is_processed_like_official_inference(synthetic_manifest, synthetic_shards):
    # mono mean of the 48 kHz song, first 10 s (the song is too short for 10 s outside a segment), no padding
    records, _ = read_manifest(synthetic_manifest)
    sample = next(s for s in _all_samples(synthetic_shards) if s["meta"]["idx"] == records[0].idx)
    assert sample["meta"]["prompt"]["rule"] == "inside_fallback"
    data, sr = sf.read(records[0].audio_path, dtype="float32", always_2d=True)
    mono = torch.from_numpy(data.T).mean(0)[: 10 * sr].reshape(1, 1, -1)
    mean, scale = ToyVAE().encode_moments(mono)
    np.testing.assert_allclose(sample["prompt_mean"], mean[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(sample["prompt_scale"], scale[0].numpy(), atol=1e-5)


def test_prompt_window_rule():
    sr = 48000
    # 100 s song, segment 0-60 s: prompt is the middle 10 s of 60-100 s
    assert _prompt_window((0, 60 * sr), 100 * sr, 10 * sr) == (75 * sr, "outside")
    assert _prompt_window((30 * sr, 100 * sr), 100 * sr, 10 * sr) == (10 * sr, "outside")
    assert _prompt_window((0, 95 * sr), 100 * sr, 10 * sr) == (0, "inside_fallback")


def test_stale_encoders_are_refused(synthetic_manifest, synthetic_shards):
    cfg = PreprocessConfig(out_dir=str(synthetic_shards), **{**SHARD_KW, "segment_seconds": 5.0})
    with pytest.raises(ProvenanceMismatch, match="config"):
        run_preprocess([synthetic_manifest], cfg, toy_encoders())


def test_rerun_is_idempotent(synthetic_manifest, synthetic_shards):
    before = sorted(p.name for p in synthetic_shards.glob("*.tar"))
    cfg = PreprocessConfig(out_dir=str(synthetic_shards), **SHARD_KW)
    report = run_preprocess([synthetic_manifest], cfg, toy_encoders())
    assert report.written == 0 and report.skipped_existing > 0
    assert sorted(p.name for p in synthetic_shards.glob("*.tar")) == before


KILL_SCRIPT = """
import os, signal, sys
from songbloom.data.preprocess import PreprocessConfig, run_preprocess
from tests.data.standins import SHARD_KW, toy_encoders
enc = toy_encoders()
encode, calls = enc.latent.encode_moments, [0]
def dying(wav):
    calls[0] += 1
    if calls[0] > int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)
    return encode(wav)
enc.latent.encode_moments = dying
cfg = PreprocessConfig(out_dir=sys.argv[2], **SHARD_KW)
run_preprocess([sys.argv[1]], cfg, enc)
"""


def test_killed_run_resumes_with_exactly_one_copy_of_every_item(tmp_path, synthetic_manifest, synthetic_shards):
    out = tmp_path / "killed"
    # 2 encoder calls per segment (audio + prompt): die after 6 segments, so one of the two split writers has
    # published a 2-sample shard and another shard is still open
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILL_SCRIPT), str(synthetic_manifest), str(out), "12"],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
    )
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert list(out.glob("*.partial")), "the kill should leave an unfinished shard behind"
    done_before = sum(s["count"] for s in completed_shards(out))
    total = sum(load_index(synthetic_shards)["splits"][k]["num_samples"] for k in ("train", "val"))
    assert 0 < done_before < total

    cfg = PreprocessConfig(out_dir=str(out), **SHARD_KW)
    report = run_preprocess([synthetic_manifest], cfg, toy_encoders())
    assert report.skipped_existing == done_before and not report.problems
    assert not list(out.glob("*.partial"))
    keys = [s["__key__"] for s in _all_samples(out)]
    expected = [s["__key__"] for s in _all_samples(synthetic_shards)]
    assert len(keys) == len(set(keys)) and sorted(keys) == sorted(expected)
    assert (
        load_index(out)["splits"]["train"]["num_samples"]
        == load_index(synthetic_shards)["splits"]["train"]["num_samples"]
    )


def test_array_tasks_and_worker_processes_partition_the_songs(
    tmp_path, synthetic_manifest, synthetic_shards, monkeypatch
):
    out = tmp_path / "tasks"
    cfg = PreprocessConfig(out_dir=str(out), **SHARD_KW)
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    assert resolve_task(None, None) == (1, 2)
    r1 = run_preprocess([synthetic_manifest], cfg, toy_encoders, task_index=None, num_tasks=None, workers=2)
    r0 = run_preprocess([synthetic_manifest], cfg, toy_encoders, task_index=0, num_tasks=2)
    assert r0.written > 0 and r1.written > 0
    assert any("-t0001-w01-" in s for s in r1.shards) and all("-t0000-" in s for s in r0.shards)
    keys = [s["__key__"] for s in _all_samples(out)]
    assert len(keys) == len(set(keys)) and sorted(keys) == sorted(s["__key__"] for s in _all_samples(synthetic_shards))
    index = load_index(out)
    assert index["splits"]["train"]["num_samples"] + index["splits"]["val"]["num_samples"] == len(keys)
    assert sorted((out / "reports").glob("task-*.json"))[-1].name == "task-0001.json"
    with pytest.raises(ValueError, match="outside"):
        resolve_task(3, 2)


def test_index_records_shard_counts_and_durations(synthetic_shards):
    index = load_index(synthetic_shards)
    for split in index["splits"].values():
        assert split["num_samples"] == sum(s["count"] for s in split["shards"])
        assert abs(split["duration_s"] - split["frames"] / 25.0) < 1e-3
        assert split["num_songs"] >= 1
    sides = {s["shard"]: s for s in completed_shards(synthetic_shards)}
    for split in index["splits"].values():
        for s in split["shards"]:
            assert sides[s["name"]]["count"] == s["count"]
    json.dumps(index)  # plain JSON, no custom types


def test_cli_verify_reports_a_damaged_shard(tmp_path, synthetic_shards, capsys):
    import shutil

    from songbloom.cli.preprocess import main

    assert main(["--out", str(synthetic_shards), "--verify"]) == 0
    bad = tmp_path / "bad"
    shutil.copytree(synthetic_shards, bad)
    victim = sorted(bad.glob("*.tar"))[-1]
    victim.write_bytes(victim.read_bytes()[:700])
    capsys.readouterr()
    assert main(["--out", str(bad), "--verify"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [(p["kind"], p["file"]) for p in report["problems"]] == [("damaged", str(victim))]
    with pytest.raises(SystemExit):
        main(["--out", str(bad)])  # no manifest and no --verify
