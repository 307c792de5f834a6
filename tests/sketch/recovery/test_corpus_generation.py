"""Corpus generation end to end: what each song file holds, frame alignment, early-EOS songs, options."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from songbloom.checkpoints.safe_load import safetensors_metadata
from songbloom.inference.generate import SamplingParams
from songbloom.inference.pipeline import SongBloomPipeline, SongRequest
from songbloom.inference.prompt import load_prompt_audio, prompt_moments
from songbloom.sketch import MuQFeatureExtractor, muq_fingerprint, num_vae_frames
from songbloom.sketch.features import to_mono
from songbloom.sketch.recovery import (
    CorpusSettings,
    corpus_status,
    generate_corpus,
    load_corpus,
    read_plan,
)
from songbloom.sketch.recovery.corpus_files import HEADER_KEY, skip_path, song_path
from tests.sketch.recovery.conftest import MAX_FRAMES, SEED, corpus_settings, one_thread, tiny_base


def test_plan_names_indices_and_seeds_like_infer(reference_corpus, job_file):
    plan = read_plan(reference_corpus)
    # Two usable lines x 2 songs; song k is line k // 2, sample k % 2, seed SEED + k (infer.py --seed's rule).
    assert [(i.index, i.name, i.seed, i.sample) for i in plan.items] == [
        (0, "a_s0", SEED, 0), (1, "a_s1", SEED + 1, 1), (2, "b_s0", SEED + 2, 0), (3, "b_s1", SEED + 3, 1)
    ]
    assert plan.items[0].lyric_ids == plan.items[1].lyric_ids != plan.items[2].lyric_ids
    assert plan.items[0].prompt_path == str(job_file.parent / "p0.wav")
    assert len(plan.problems) == 1 and "missing.wav" in plan.problems[0] and ":3" in plan.problems[0]


def test_every_song_is_stored_frame_aligned_or_counted_as_skipped(reference_corpus, base_bundle, corpus_muq):
    status = corpus_status(reference_corpus)
    assert status.complete and status.planned == 4 and status.done + status.skipped == 4
    songs = load_corpus(reference_corpus)
    assert [s.index for s in songs] == sorted(s.index for s in songs)
    # The scenario this test relies on: an early EOS (a skipped song) and songs of different lengths.
    assert status.skipped >= 1, "the test model no longer ends a song in its first patch: retune EOS_BIAS / SEED"
    assert len({s.num_frames for s in songs}) >= 2 and max(s.num_frames for s in songs) == MAX_FRAMES
    assert status.frames == sum(s.num_frames for s in songs)
    eos = base_bundle.config.model.eos_id
    for s in songs:
        f = s.num_frames
        assert f > 0 and f % base_bundle.config.model.block_size == 0
        assert s.sketch_ids.dtype == torch.long and s.sketch_ids.shape == (f,)
        assert int(s.sketch_ids.max()) < eos and int(s.sketch_ids.min()) >= 0  # sampled ids, EOS dropped
        assert s.latents.shape == (8, f) and s.latents.dtype == torch.float32
        assert s.features.shape == (2, f, 64) and s.layers == (0, 2)
        assert s.prompt_latents is not None and s.prompt_latents.shape[0] == 8
        assert s.audio is None  # only with with_audio=True
        meta = s.meta
        assert meta["frames"] == f and meta["name"] == s.name and meta["seed"] == SEED + s.index
        assert meta["lyric_ids"] == s.lyric_ids.tolist()
        assert meta["sampling"] == json.loads(json.dumps(corpus_settings().params.as_dict()))
        assert meta["muq"]["fingerprint"] == muq_fingerprint(corpus_muq) and meta["muq"]["layers"] == [0, 2]
        assert meta["base"]["num_pitch"] == 64 and len(meta["base"]["weights_fingerprint"]) == 16
        assert meta["audio"]["samples"] == f * 1920 and meta["stop_reason"] in ("eos", "max_length")
    skipped = [i for i in read_plan(reference_corpus).items if skip_path(reference_corpus, i.name).exists()]
    assert len(skipped) == status.skipped and not any(song_path(reference_corpus, i.name).exists() for i in skipped)
    marker = json.loads(skip_path(reference_corpus, skipped[0].name).read_text())
    assert "EOS in the first patch" in marker["reason"] and marker["seed"] == skipped[0].seed


def test_header_is_json_in_the_safetensors_metadata(reference_corpus):
    song = load_corpus(reference_corpus)[0]
    header = json.loads(safetensors_metadata(song_path(reference_corpus, song.name))[HEADER_KEY])
    for key in ("name", "index", "seed", "lyric_ids", "prompt_path", "sampling", "base", "muq", "frames",
                "prompt_frames", "plan_sha256", "content_sha256", "alignment_rule"):
        assert key in header, key


def test_song_equals_a_direct_pipeline_run_with_its_seed(reference_corpus, base_bundle):
    """The stored ids and latents are what the pipeline samples for that seed, lyrics and prompt (batch of one)."""
    song = max(load_corpus(reference_corpus, with_audio=True), key=lambda s: s.num_frames)
    item = read_plan(reference_corpus).by_name()[song.name]
    wav = load_prompt_audio(item.prompt_path, 48000, base_bundle.config.prompt_len)
    request = SongRequest(item.name, item.lyric_ids, prompt_moments(base_bundle.vae, wav), item.seed)
    with torch.no_grad():
        (res,) = SongBloomPipeline(base_bundle, corpus_settings().params).generate([request])
    assert torch.equal(res.song.tokens, song.sketch_ids)
    torch.testing.assert_close(res.song.latent, song.latents, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(res.prompt_latent, song.prompt_latents)
    torch.testing.assert_close(res.audio, song.audio, atol=1e-5, rtol=1e-4)


def test_features_are_a_fresh_extraction_of_the_decoded_audio(reference_corpus, corpus_muq):
    songs = load_corpus(reference_corpus, with_audio=True)
    for s in songs:
        assert s.audio.shape == (2, s.num_frames * 1920) and s.sample_rate == 48000
        mono = to_mono(s.audio)
        assert num_vae_frames(mono.shape[-1], s.sample_rate) == s.num_frames
        fresh = MuQFeatureExtractor(corpus_muq, layer=-1).extract_many([mono], 48000)[0]  # [F, D]
        torch.testing.assert_close(s.features[1], fresh, atol=1e-3, rtol=1e-3)
        first = MuQFeatureExtractor(corpus_muq, layer=0).extract_many([mono], 48000)[0]
        torch.testing.assert_close(s.features[0], first, atol=1e-3, rtol=1e-3)
        # A one-frame slip would be caught: neighbouring frames differ by far more than the tolerance.
        if s.num_frames > 1:
            assert not torch.allclose(s.features[1][1:], fresh[:-1], atol=1e-2)


def test_layers_are_picked_at_load(reference_corpus):
    full = load_corpus(reference_corpus)
    last = load_corpus(reference_corpus, layers=(-1,), verify=False)
    assert last[0].layers == (2,) and torch.equal(last[0].features[0], full[0].features[1])
    with pytest.raises(ValueError, match=r"layer\(s\) \[1\] were not stored; this corpus holds layers \[0, 2\]"):
        load_corpus(reference_corpus, layers=(1,))


def test_without_audio_in_float16(tmp_path, base_bundle, corpus_muq, job_file, reference_corpus):
    out = tmp_path / "lean"
    settings = corpus_settings(store_audio=False, feature_dtype="float16", layers=(2,), batch_size=4)
    generate_corpus(base_bundle, job_file, out, corpus_muq, settings, progress=False)
    lean, ref = load_corpus(out), load_corpus(reference_corpus)
    assert [s.name for s in lean] == [s.name for s in ref]
    for a, b in zip(lean, ref, strict=True):
        assert torch.equal(a.sketch_ids, b.sketch_ids)
        assert a.features.dtype == torch.float16 and a.features.shape[0] == 1
        torch.testing.assert_close(a.features[0].float(), b.features[1], atol=2e-2, rtol=1e-2)
    with pytest.raises(ValueError, match="no audio stored"):
        load_corpus(out, with_audio=True)


def test_all_songs_ending_at_once_are_counted_not_dropped(tmp_path, corpus_muq, job_file, caplog):
    eager = tiny_base(eos_bias=1e4)  # EOS is always drawn first: every song has 0 frames
    out = tmp_path / "eos"
    with one_thread():
        report = generate_corpus(eager, job_file, out, corpus_muq, corpus_settings(), progress=False)
    assert report.skipped_eos == 4 and report.written == 0
    status = corpus_status(out)
    assert status.complete and status.skipped == 4 and status.done == 0 and status.frames == 0
    with caplog.at_level(logging.INFO):
        assert load_corpus(out, require_complete=True) == []
    assert "4 song(s) skipped at generation (EOS in the first patch" in caplog.text
    again = generate_corpus(eager, job_file, out, corpus_muq, corpus_settings(), progress=False)
    assert again.already_done == 4 and again.skipped_eos == 0 and again.recomputed == 0


def test_progress_is_logged_line_by_line(tmp_path, base_bundle, corpus_muq, job_file, caplog):
    with caplog.at_level(logging.INFO, logger="songbloom.sketch.recovery"):
        generate_corpus(base_bundle, job_file, tmp_path / "c", corpus_muq, corpus_settings(), task_index=1,
                        num_tasks=2, progress=False)
    lines = [r.getMessage() for r in caplog.records if r.name == "songbloom.sketch.recovery.corpus"]
    assert any(m.startswith("corpus task 1/2: 2/2 songs (100%)") and "eta" in m for m in lines), lines
    assert any("corpus task 1/2 finished" in m for m in lines)
    report = json.loads((tmp_path / "c" / "reports" / "task-0001-of-0002.json").read_text())
    assert report["planned"] == 2 and report["task_index"] == 1


def test_settings_are_checked():
    with pytest.raises(ValueError, match="exact_release_rng"):
        CorpusSettings(params=SamplingParams(exact_release_rng=True))
    with pytest.raises(ValueError, match="feature_dtype='int8'"):
        CorpusSettings(feature_dtype="int8")
    with pytest.raises(ValueError, match="songs_per_request and batch_size"):
        CorpusSettings(songs_per_request=0)


def test_a_job_file_without_usable_lines_is_refused(tmp_path, base_bundle, corpus_muq):
    jobs = tmp_path / "bad.jsonl"
    jobs.write_text('{"idx": "x", "lyrics": "la"}\nnot json\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.jsonl: no usable line \(2 problem"):
        generate_corpus(base_bundle, jobs, tmp_path / "out", corpus_muq, corpus_settings(), progress=False)
    assert not Path(tmp_path / "out").exists()


def test_an_unreadable_prompt_fails_its_songs_only(tmp_path, base_bundle, corpus_muq, job_file):
    (tmp_path / "broken.wav").write_bytes(b"not audio at all")
    jobs = tmp_path / "jobs.jsonl"
    lines = [{"idx": "x", "lyrics": "[verse] こわれた", "prompt_wav": "broken.wav"},
             {"idx": "y", "lyrics": "[verse] げんき", "prompt_wav": str(job_file.parent / "p1.wav")}]
    jobs.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
    out = tmp_path / "out"
    report = generate_corpus(base_bundle, jobs, out, corpus_muq, corpus_settings(batch_size=4), progress=False)
    assert len(report.failed) == 2 and all("broken.wav" in f and "cannot read audio" in f for f in report.failed)
    assert report.written + report.skipped_eos == 2
    status = corpus_status(out)
    assert sorted(status.missing) == ["x_s0", "x_s1"] and not status.complete
    assert "missing ['x_s0', 'x_s1']" in status.summary()


@pytest.mark.parametrize(
    ("tamper", "settings", "expected"),
    [
        (lambda f: f[:-1], {}, "sketch ids, .* latent frames and .* feature frames .* must agree frame for frame"),
        (lambda f: f * 1e6, {"feature_dtype": "float16"}, "overflow float16; use feature_dtype='float32'"),
    ],
)
def test_features_that_do_not_fit_are_refused(tmp_path, base_bundle, corpus_muq, job_file, monkeypatch, tamper,
                                             settings, expected):
    real = MuQFeatureExtractor.extract_many_layers

    def tampered(self, wavs, sample_rate, layers=None):
        return [tamper(f) for f in real(self, wavs, sample_rate, layers)]

    monkeypatch.setattr(MuQFeatureExtractor, "extract_many_layers", tampered)
    with pytest.raises(RuntimeError, match=expected):
        generate_corpus(base_bundle, job_file, tmp_path / "c", corpus_muq, corpus_settings(**settings),
                        progress=False)
    assert not list((tmp_path / "c" / "songs").glob("*.safetensors"))


@pytest.mark.parametrize(("sample_rate", "hop"), [(48000, 1920), (16000, 640)])
def test_corpus_with_the_frame_linear_proxy_vae(tmp_path, corpus_muq, job_file, sample_rate, hop):
    """The recovery proxy's VAE, also at another sample rate: audio, latents and features stay frame-aligned."""
    from songbloom.models.frame_vae import FrameLinearVAE

    bundle = tiny_base()
    bundle.config.sr = sample_rate
    bundle.vae = FrameLinearVAE.sinusoidal(latent_dim=8, sample_rate=sample_rate, hop=hop, seed=1)
    out = tmp_path / "proxy"
    with one_thread():
        generate_corpus(bundle, job_file, out, corpus_muq, corpus_settings(batch_size=4), progress=False)
    songs = load_corpus(out, with_audio=True)
    assert songs and corpus_status(out).complete
    for s in songs:
        assert s.sample_rate == sample_rate and s.audio.shape == (2, s.num_frames * hop)
        # The stored audio is the decoded stored latents, frame for frame (the proxy VAE inverts exactly).
        torch.testing.assert_close(bundle.vae.encode(s.audio[None], sample=False)[0], s.latents, atol=1e-4,
                                   rtol=1e-4)
        fresh = MuQFeatureExtractor(corpus_muq, layers=(0, 2)).extract_many_layers([to_mono(s.audio)], sample_rate)
        torch.testing.assert_close(s.features, fresh[0].permute(1, 0, 2), atol=1e-3, rtol=1e-3)
