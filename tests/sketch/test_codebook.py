"""End to end on a tiny random MuQ: train a codebook on synthetic timbres, tokenise, evaluate, version."""

from __future__ import annotations

import json
import shutil
import tarfile

import pytest
import torch
from safetensors.torch import load_file, save_file

from songbloom.sketch import (
    CodebookTrainer,
    CodebookTrainingConfig,
    SketchTokenizer,
    build_tiny_muq,
    check_num_pitch,
    cluster_purity,
    codebook_requires_retraining,
    load_codebook,
    sketch_codebook_record,
)
from songbloom.sketch.cli import main as cli_main
from songbloom.sketch.sources import collect_items, list_directory
from songbloom.sketch.trainer import FeatureCache
from tests.sketch.conftest import SR
from tests.sketch.synth import NUM_TIMBRES, make_timbre_set, write_clips


def _train_cfg(**kw) -> CodebookTrainingConfig:
    base = dict(num_codes=8, epochs=2, batch_frames=128, shuffle_buffer_frames=512, seed=0, reseed_every=5,
                checkpoint_every_files=4)
    base.update(kw)
    return CodebookTrainingConfig(**base)


@pytest.fixture(scope="module")
def trained(tiny_muq, tiny_muq_dir, timbre_audio_dirs, tmp_path_factory):
    train_dir, held_dir, _, _ = timbre_audio_dirs
    work = tmp_path_factory.mktemp("work")
    trainer = CodebookTrainer(_train_cfg(), tiny_muq, muq_model_id=str(tiny_muq_dir), work_dir=work, progress=False)
    result = trainer.run(list_directory(train_dir), work / "codebook.safetensors",
                         heldout_items=list_directory(held_dir))
    return result, work


def test_codes_separate_timbres_on_heldout_audio(trained, tiny_muq_dir):
    result, _ = trained
    tok = SketchTokenizer.from_artifact(result.artifact_path)  # MuQ is loaded from the path recorded in the artifact
    clips = make_timbre_set(2, 2.0, SR, seed=7)  # fresh audio, not seen in training
    ids = torch.stack(tok.tokenize_many([w for _, w in clips], SR))
    labels = torch.tensor([k for k, _ in clips])[:, None].expand_as(ids)
    purity = cluster_purity(ids, labels)
    assert purity >= 0.9, purity
    # The test must be able to fail: random or shuffled codes score far lower on the same labels.
    g = torch.Generator().manual_seed(0)
    random_purity = cluster_purity(torch.randint(0, 8, ids.shape, generator=g), labels)
    shuffled_purity = cluster_purity(ids.flatten()[torch.randperm(ids.numel(), generator=g)], labels.flatten())
    assert random_purity < 0.5 and shuffled_purity < 0.5, (random_purity, shuffled_purity)
    assert len(ids.unique()) >= NUM_TIMBRES


def test_metrics_are_reported_and_saved(trained):
    result, _ = trained
    m = result.metrics
    assert result.heldout_is_separate and m.num_frames == 4 * 50
    assert m.num_codes == 8 and 4 <= m.codes_used <= 8
    assert m.dead_code_ratio == pytest.approx(1 - m.usage)
    assert 1.0 <= m.perplexity <= 8.0
    assert 0.0 <= m.relative_error < 0.5, m.relative_error  # far better than quantising to the mean
    saved = json.loads(result.metrics_path.read_text())
    assert saved["codebook_hash"] == result.codebook.codebook_hash and saved["perplexity"] == m.perplexity


def test_artifact_metadata_and_hash(trained, tiny_muq_dir):
    result, _ = trained
    cb = load_codebook(result.artifact_path)
    meta = cb.metadata
    assert meta["codebook_size"] == 8 and meta["feature_dim"] == 64
    assert meta["muq_model_id"] == str(tiny_muq_dir) and meta["muq_licence"] == "CC-BY-NC-4.0"
    assert meta["muq_layer"] == 2 and meta["feature_normalisation"] == "standardize"
    assert meta["training"]["num_train_clips"] == 12 and meta["training"]["num_heldout_clips"] == 4
    assert meta["training"]["num_train_frames"] == 12 * 50
    assert len(meta["codebook_hash"]) == 16 and cb.codebook_hash == result.codebook.codebook_hash
    assert sketch_codebook_record(meta) == {"sketch_codebook_hash": meta["codebook_hash"], "sketch_codebook_size": 8,
                                            "sketch_muq_model_id": str(tiny_muq_dir), "sketch_muq_layer": 2}


def test_edited_artifact_is_refused(trained, tmp_path):
    result, _ = trained
    tensors = load_file(str(result.artifact_path))
    from safetensors import safe_open

    with safe_open(str(result.artifact_path), framework="pt") as f:
        header = f.metadata()
    tensors["codebook"][0, 0] += 1.0
    bad = tmp_path / "edited.safetensors"
    save_file(tensors, str(bad), metadata=header)
    with pytest.raises(ValueError, match="content hash mismatch"):
        load_codebook(bad)
    (tmp_path / "junk.safetensors").write_bytes(b"not a codebook")
    with pytest.raises(ValueError, match="damaged file"):
        load_codebook(tmp_path / "junk.safetensors")


def test_tokenize_shapes_batching_and_feature_path(trained, tiny_muq):
    result, _ = trained
    tok = SketchTokenizer.from_artifact(result.artifact_path, muq=tiny_muq)
    assert tok.num_codes == 8 and tok.codebook_hash == result.codebook.codebook_hash
    wav48 = torch.randn(2, 48000 * 2 + 1000) * 0.1
    ids = tok.tokenize(wav48, 48000)
    assert ids.dtype == torch.long and ids.shape == (2, (48000 * 2 + 1000) // 1920)
    assert int(ids.min()) >= 0 and int(ids.max()) < 8
    assert tok.tokenize(wav48[0], 48000).shape == (1, 50)
    feats = tok.features(wav48, 48000)
    torch.testing.assert_close(tok.tokenize_features(feats), ids, rtol=0, atol=0)
    many = tok.tokenize_many([wav48[0], wav48[1, :48000]], 48000)
    assert [t.shape[0] for t in many] == [50, 25]
    assert torch.equal(many[0], ids[0])


def test_tokenizer_refuses_a_different_muq(trained):
    result, _ = trained
    other = build_tiny_muq(seed=1)
    with pytest.raises(ValueError, match="not the one codebook"):
        SketchTokenizer.from_artifact(result.artifact_path, muq=other)


def test_codebook_size_must_equal_num_pitch(trained, tiny_muq, tmp_path):
    result, _ = trained
    check_num_pitch(16384, 16384)
    with pytest.raises(ValueError, match=r"8 codes but the model's num_pitch is 16384"):
        check_num_pitch(result.codebook.num_codes, 16384)
    with pytest.raises(ValueError, match="num_pitch is 16384"):
        CodebookTrainingConfig(num_codes=129, num_pitch=16384).validate()
    with pytest.raises(ValueError, match="num_pitch"):
        CodebookTrainer(_train_cfg(num_pitch=16), tiny_muq, muq_model_id="x", work_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="num_pitch"):
        codebook_requires_retraining(result.codebook.metadata, {"num_pitch": 16384})


def test_codebook_requires_retraining(trained):
    meta = trained[0].codebook.metadata
    assert codebook_requires_retraining(meta, None)  # release weights record no codebook
    assert codebook_requires_retraining(meta, {"num_pitch": 8, "sketch_codebook_hash": None})
    assert codebook_requires_retraining(meta, {"num_pitch": 8, "sketch_codebook_hash": "0123456789abcdef"})
    assert not codebook_requires_retraining(meta, {"num_pitch": 8, **sketch_codebook_record(meta)})


def test_training_resumes_to_the_same_codebook(tiny_muq, timbre_audio_dirs, tmp_path, monkeypatch):
    train_dir, held_dir, _, _ = timbre_audio_dirs
    items, held = list_directory(train_dir), list_directory(held_dir)

    def trainer_for(work, **kw):
        return CodebookTrainer(_train_cfg(**kw), tiny_muq, muq_model_id="tiny", work_dir=work, progress=False)

    straight = trainer_for(tmp_path / "a").run(items, tmp_path / "a" / "cb.safetensors", heldout_items=held)
    work = tmp_path / "c"
    shutil.copytree(tmp_path / "a" / "features", work / "features")  # reuse cached features: no second MuQ pass
    # Interrupt a fresh run in the middle of epoch 1 (after the 4th-clip checkpoint), then resume it.
    real_get = FeatureCache.get
    calls = {"n": 0}

    def flaky_get(self, item):
        calls["n"] += 1
        if calls["n"] == 19:  # the init sample reads 12 clips, then epoch 1 reads clips 1..6
            raise KeyboardInterrupt
        return real_get(self, item)

    monkeypatch.setattr(FeatureCache, "get", flaky_get)
    with pytest.raises(KeyboardInterrupt):
        trainer_for(work).run(items, work / "cb.safetensors", heldout_items=held)
    monkeypatch.undo()
    state = load_file(str(work / "kmeans_state.safetensors"))
    assert int(state["epoch"]) == 0 and int(state["cursor"]) == 4
    with pytest.raises(ValueError, match="differ from those of the checkpoint"):
        trainer_for(work).run(items[:-1], work / "cb.safetensors", heldout_items=held)
    resumed = trainer_for(work).run(items, work / "cb.safetensors", heldout_items=held)
    torch.testing.assert_close(resumed.codebook.centers, straight.codebook.centers, rtol=0, atol=0)
    assert resumed.codebook.codebook_hash == straight.codebook.codebook_hash
    with pytest.raises(ValueError, match="different configuration"):
        trainer_for(work, num_codes=6)


def test_sources_manifest_shards_and_bad_items(timbre_audio_dirs, tmp_path):
    train_dir, _, train_paths, _ = timbre_audio_dirs
    manifest = tmp_path / "m.jsonl"
    lines = [json.dumps({"audio_path": str(train_paths[0])}), "{not json", json.dumps({"lyrics": "x"}),
             json.dumps({"audio_path": str(tmp_path / "missing.wav")})]
    manifest.write_text("\n".join(lines) + "\n")
    shard = tmp_path / "s-000.tar"
    with tarfile.open(shard, "w") as tar:
        tar.add(train_paths[1], arcname="k1.audio.wav")
        tar.add(train_paths[2], arcname="k2.audio.wav")
    items, skipped = collect_items(audio_dirs=[str(train_dir)], manifests=[str(manifest)], shards=[str(shard)])
    assert len(items) == 12 + 1 + 2  # manifest entry 0 duplicates a directory file: kept once
    reasons = sorted(s.reason.split(";")[0].split(" (")[0] for s in skipped)
    assert reasons == ["invalid JSON", "missing string field 'audio_path'"]
    assert all(f"{manifest}:" in s.key for s in skipped)
    only_k1, _ = collect_items(shards=[str(shard)], shard_member_suffix="1.audio.wav")
    assert [it.member for it in only_k1] == ["k1.audio.wav"]


def test_cli_train_tokenize_eval(timbre_audio_dirs, tmp_path, capsys):
    train_dir, held_dir, train_paths, _ = timbre_audio_dirs
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....garbage")
    manifest = tmp_path / "train.jsonl"
    manifest.write_text("".join(json.dumps({"audio_path": str(p)}) + "\n" for p in [*train_paths, bad]))
    out = tmp_path / "cb.safetensors"
    rc = cli_main(["train", "--manifest", str(manifest), "--heldout-audio-dir", str(held_dir), "--tiny-muq-seed", "0",
                   "--num-codes", "8", "--num-pitch", "8", "--epochs", "1", "--batch-frames", "128",
                   "--work-dir", str(tmp_path / "work"), "--out", str(out), "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0 and out.is_file() and "perplexity" in text and "skipped clips: 1" in text
    skipped = (tmp_path / "work" / "skipped.jsonl").read_text()
    assert "broken.wav" in skipped and "cannot read audio" in skipped
    assert (tmp_path / "cb.metrics.json").is_file()

    rc = cli_main(["tokenize", "--codebook", str(out), str(train_paths[0]), str(bad),
                   "--out-dir", str(tmp_path / "tok")])
    assert rc == 0
    index = [json.loads(line) for line in (tmp_path / "tok" / "index.jsonl").read_text().splitlines()]
    assert len(index) == 1 and index[0]["num_frames"] == 50
    cb_hash = load_codebook(out).codebook_hash
    assert index[0]["sketch_codebook_hash"] == cb_hash
    tokens = load_file(str(tmp_path / "tok" / index[0]["tokens_path"]))["tokens"]
    assert tokens.shape == (50,) and tokens.dtype == torch.long

    rc = cli_main(["eval", "--codebook", str(out), "--audio-dir", str(held_dir), "--out", str(tmp_path / "e.json")])
    assert rc == 0 and json.loads((tmp_path / "e.json").read_text())["num_frames"] == 200

    assert cli_main(["train", "--audio-dir", str(train_dir), "--tiny-muq-seed", "0", "--num-codes", "129",
                     "--num-pitch", "16384", "--work-dir", str(tmp_path / "w2"), "--out", str(tmp_path / "x")]) == 2
    assert "must be equal" in capsys.readouterr().err
    assert cli_main(["tokenize", "--codebook", str(tmp_path / "nope.safetensors"), str(train_paths[0]),
                     "--out-dir", str(tmp_path / "t2")]) == 2
    assert "not found" in capsys.readouterr().err


def test_demo_codebook_fits_the_tiny_preset(tmp_path):
    from songbloom.config import SongBloomConfig
    from songbloom.sketch import build_demo_codebook

    num_pitch = SongBloomConfig.from_name("tiny").model.num_pitch
    path = build_demo_codebook(tmp_path / "demo", num_codes=num_pitch, clips_per_timbre=2, seconds=2.0, epochs=1)
    tok = SketchTokenizer.from_artifact(path)
    check_num_pitch(tok.num_codes, num_pitch)
    ids = tok.tokenize(torch.randn(48000) * 0.1, 24000)
    assert ids.shape == (1, 50) and int(ids.max()) < num_pitch


def test_feature_cache_notices_a_changed_file(tmp_path):
    import os

    from songbloom.sketch.sources import AudioItem

    write_clips(tmp_path, [(0, torch.zeros(2400))], SR)
    wav = next(tmp_path.glob("*.wav"))
    cache = FeatureCache(tmp_path / "cache", "float16")
    item = AudioItem(key=str(wav), path=str(wav))
    cache.put(item, torch.ones(3, 4))
    assert cache.has(item) and cache.num_frames(item) == 3
    st = wav.stat()
    os.utime(wav, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert not cache.has(item)
