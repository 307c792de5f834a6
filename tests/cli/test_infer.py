"""``infer.py`` end to end on a tiny random model saved in the release layout (directory and ``.pt``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from songbloom.checkpoints import registry as checkpoints
from songbloom.checkpoints.release_state import save_release_checkpoint
from songbloom.checkpoints.release_yaml_writer import write_release_yaml
from songbloom.cli.infer import main, read_jsonl
from songbloom.config import SongBloomConfig
from songbloom.inference.generate import SamplingParams
from songbloom.models.songbloom import SongBloomModel
from songbloom.models.vae import OobleckVAE, VAEConfig

MAX_DURATION = 1.0  # seconds: 25 frames -> the release length rule keeps 7 patches of 4 frames


@pytest.fixture(scope="module")
def release_dir(tmp_path_factory) -> Path:
    """A release-layout dir: model YAML (``???`` paths), ``.pt`` (model.* + vae.vae.*), VAE json/ckpt, vocab."""
    d = tmp_path_factory.mktemp("tiny_release")
    cfg = SongBloomConfig.from_name("tiny")
    write_release_yaml(cfg, d, yaml_name="tiny_song.yaml", pt_name="tiny_song.pt")
    torch.manual_seed(0)
    model = SongBloomModel(cfg.model)
    with torch.no_grad():
        model.skeleton_classifier[-1].bias[cfg.model.eos_id] = -1e4  # no early EOS: lengths are predictable
    vae_cfg = VAEConfig.tiny()
    vae = OobleckVAE(vae_cfg)
    save_release_checkpoint(d / "tiny_song.pt", model.state_dict(), vae.state_dict())
    vae_cfg.to_json(d / "stable_audio_1920_vae.json")
    torch.save({"state_dict": vae.state_dict()}, d / "autoencoder_music_dsp1920.ckpt")
    return d


def _expected_samples() -> int:
    cfg = SongBloomConfig.from_name("tiny")
    p = cfg.model.block_size
    return SamplingParams(max_frames=MAX_DURATION * cfg.frame_rate).max_patches(p) * p * 1920


def _run(args: list[str]) -> int:
    return main([*args, "--device", "cpu", "--max-duration", str(MAX_DURATION), "--log-level", "WARNING"])


def test_official_example_jsonl_unchanged(shared_dir, release_dir, tmp_path, monkeypatch):
    example = shared_dir / "reference" / "upstream_example"
    monkeypatch.chdir(tmp_path)  # the relative prompt path resolves against the JSONL's folder
    out = tmp_path / "out"
    rc = _run(
        [
            "--input-jsonl",
            str(example / "test.jsonl"),
            "--ckpt-path",
            str(release_dir),
            "--output-dir",
            str(out),
            "--n-samples",
            "1",
            "--seed",
            "3",
        ]
    )
    assert rc == 0
    for idx in ("test", "test2"):
        audio, sr = sf.read(out / f"{idx}_s0.flac", always_2d=True)
        assert sr == 48000 and audio.shape == (_expected_samples(), 2)
        assert np.isfinite(audio).all() and np.abs(audio).max() > 0


def test_pt_path_bad_items_and_formats(release_dir, tmp_path, monkeypatch):
    sr = 44100
    wav = (0.1 * np.sin(np.linspace(0, 2000, sr * 2))).astype(np.float32)
    sf.write(tmp_path / "p.wav", np.stack([wav, -wav], 1), sr)  # stereo 44.1 kHz: resampled, down-mixed
    lines = [
        json.dumps({"idx": "good", "lyrics": "[verse] n i h ao , [chorus] w o", "prompt_wav": "p.wav"}),
        "{not json",
        json.dumps({"idx": "noprompt", "lyrics": "[verse] a", "prompt_wav": "missing.wav"}),
        json.dumps({"idx": "nolyrics", "prompt_wav": "p.wav"}),
        "",
        json.dumps({"idx": "good", "lyrics": "[verse] a", "prompt_wav": "p.wav"}),
        json.dumps({"idx": 7, "lyrics": "[chorus] w o", "prompt_wav": str(tmp_path / "p.wav")}),
    ]
    jsonl = tmp_path / "jobs.jsonl"
    jsonl.write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    items, problems = read_jsonl(jsonl)
    assert [i.idx for i in items] == ["good", "7"]
    assert [p.line for p in problems] == [2, 3, 4, 6]
    assert "not valid JSON" in problems[0].reason and "not found" in problems[1].reason
    assert "lyrics" in problems[2].reason and "duplicate idx" in problems[3].reason

    out = tmp_path / "out"
    rc = _run(
        [
            "--input-jsonl",
            str(jsonl),
            "--ckpt-path",
            str(release_dir / "tiny_song.pt"),
            "--output-dir",
            str(out),
            "--n-samples",
            "2",
            "--batch-size",
            "3",
            "--seed",
            "1",
            "--output-format",
            "wav",
        ]
    )
    assert rc == 0  # bad lines are reported, the good items still run (exit 1: nothing written, or --strict)
    names = sorted(p.name for p in out.iterdir() if p.suffix != ".json")  # each song has a .json sidecar
    assert names == ["7_s0.wav", "7_s1.wav", "good_s0.wav", "good_s1.wav"]
    for name in names:
        audio, rate = sf.read(out / name, always_2d=True)
        assert rate == 48000 and audio.shape == (_expected_samples(), 2)

    # Songs depend on their seed only, not on the batch they ran in.
    out1 = tmp_path / "out1"
    _run(
        [
            "--input-jsonl",
            str(jsonl),
            "--ckpt-path",
            str(release_dir / "tiny_song.pt"),
            "--output-dir",
            str(out1),
            "--n-samples",
            "2",
            "--batch-size",
            "1",
            "--seed",
            "1",
            "--output-format",
            "wav",
        ]
    )
    for name in names:
        a, _ = sf.read(out / name)
        b, _ = sf.read(out1 / name)
        assert np.abs(a - b).max() <= 1e-4


def test_exact_release_rng_mode_and_mp3(release_dir, tmp_path):
    sr = 48000
    sf.write(tmp_path / "p.wav", (0.05 * np.random.default_rng(0).standard_normal(sr)).astype(np.float32), sr)
    jsonl = tmp_path / "jobs.jsonl"
    jsonl.write_text(json.dumps({"idx": "x", "lyrics": "[verse] n i", "prompt_wav": str(tmp_path / "p.wav")}) + "\n")
    outs = []
    for run in ("a", "b"):
        out = tmp_path / run
        rc = _run(
            [
                "--input-jsonl",
                str(jsonl),
                "--ckpt-path",
                str(release_dir),
                "--output-dir",
                str(out),
                "--n-samples",
                "2",
                "--batch-size",
                "4",
                "--seed",
                "5",
                "--exact-release-rng",
                "--output-format",
                "mp3",
            ]
        )
        assert rc == 0
        outs.append(sorted(p for p in out.iterdir() if p.suffix != ".json"))
    assert [p.name for p in outs[0]] == ["x_s0.mp3", "x_s1.mp3"]
    a0, rate = sf.read(outs[0][0], always_2d=True)
    assert rate == 48000 and a0.shape[1] == 2 and abs(a0.shape[0] - _expected_samples()) <= 2048
    # Same global seed -> same songs; the two samples of one run differ (the RNG stream continues).
    assert np.array_equal(a0, sf.read(outs[1][0], always_2d=True)[0])
    assert not np.array_equal(a0, sf.read(outs[0][1], always_2d=True)[0])


def test_checkpoint_registry(tmp_path, release_dir):
    assert checkpoints.detect_checkpoint_format(release_dir).name == "release_dir"
    assert checkpoints.detect_checkpoint_format(release_dir / "tiny_song.pt").name == "release_pt"
    junk = tmp_path / "weights.pt"
    torch.save({"x": torch.zeros(1)}, junk)
    with pytest.raises(ValueError, match="not a checkpoint layout"):
        checkpoints.detect_checkpoint_format(junk)
    with pytest.raises(FileNotFoundError):
        checkpoints.detect_checkpoint_format(tmp_path / "nope.pt")
    seen = []
    fmt = checkpoints.CheckpointFormat(
        "test_only",
        "a test handler",
        lambda p: p.suffix == ".pt" and p.name == "weights.pt",
        lambda p, o: seen.append((p, o.dtype)) or "built",
    )
    checkpoints.register_checkpoint_format(fmt)
    try:
        assert checkpoints.load_checkpoint(junk, dtype=torch.bfloat16) == "built"
        assert seen == [(junk, torch.bfloat16)]
        with pytest.raises(ValueError, match="already registered"):
            checkpoints.register_checkpoint_format(fmt)
    finally:
        from songbloom.checkpoints import registry

        registry._FORMATS.pop("test_only")
    bundle = checkpoints.load_checkpoint(release_dir / "tiny_song.pt")
    assert bundle.model.cfg == SongBloomConfig.from_name("tiny").model


def test_lyric_encoding_errors_and_warnings():
    from songbloom.cli.infer import encode_lyrics
    from songbloom.text import Vocabulary, load_vocab_list

    vocab = Vocabulary(load_vocab_list())
    ids, notes = encode_lyrics("[verse] n i h ao", vocab, 600)
    assert ids[0] == vocab.tokenize("[verse]").ids[0] and len(ids) > 1 and not notes
    with pytest.raises(ValueError, match="no vocabulary tokens"):
        encode_lyrics("   ", vocab, 600)
    long = "[verse] " + "a " * 700
    ids, notes = encode_lyrics(long, vocab, 600)
    assert len(ids) > 600 and any("first 600" in n for n in notes)  # cut by the conditioner, as released
    with pytest.raises(ValueError, match="first 600"):
        encode_lyrics(long, vocab, 600, strict=True)


def test_unloadable_checkpoint_is_a_clean_error(tmp_path):
    jsonl = tmp_path / "jobs.jsonl"
    jsonl.write_text("", encoding="utf-8")
    junk = tmp_path / "weights.pt"
    torch.save({"x": torch.zeros(1)}, junk)
    with pytest.raises(SystemExit, match="cannot load the model: .*not a checkpoint layout"):
        _run(["--input-jsonl", str(jsonl), "--ckpt-path", str(junk), "--output-dir", str(tmp_path / "o")])


def test_prompt_noise_follows_the_official_null_row_draw():
    """exact_release_rng draws the (2, D, F) posterior noise of the [prompt, null] batch and uses row 0."""
    from songbloom.inference.prompt import prompt_moments, sample_prompt_latent

    torch.manual_seed(0)
    vae = OobleckVAE(VAEConfig.tiny()).eval()
    wav = 0.1 * torch.randn(1, 48000)
    moments = prompt_moments(vae, wav)
    d, f = moments.mean.shape[1:]
    torch.manual_seed(7)
    exact = sample_prompt_latent(vae, moments, "sample", exact_release_rng=True)
    after_exact = torch.rand(3)
    torch.manual_seed(7)
    noise = torch.randn(2, d, f)
    assert torch.allclose(exact, vae.sample(moments.mean, moments.scale, noise[:1]))
    assert torch.equal(after_exact, torch.rand(3))  # the RNG advanced by both rows
    gen = torch.Generator().manual_seed(7)
    fast = sample_prompt_latent(vae, moments, "sample", generator=gen)
    assert fast.shape == exact.shape and not torch.equal(fast, moments.mean)
    assert torch.equal(sample_prompt_latent(vae, moments, "mean"), moments.mean)
    assert prompt_moments(vae, wav[:, :100]) is None  # shorter than the VAE minimum: no prompt
