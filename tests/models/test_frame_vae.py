"""The frame-linear proxy VAE: exact round trips, frame geometry, the OobleckVAE interface, its json, the factory."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from songbloom.models.frame_vae import (
    FRAME_LINEAR_MODEL_TYPE,
    SINUSOID_MAX_HZ,
    SINUSOID_MIN_HZ,
    FrameLinearConfig,
    FrameLinearVAE,
    sinusoid_harmonics,
)
from songbloom.models.vae import MIN_ENCODE_SAMPLES, POSTERIOR_STD_FLOOR, OobleckVAE, VAEConfig, posterior_std
from songbloom.models.vae_factory import (
    VAE_MODEL_TYPES,
    build_vae,
    vae_config_from_dict,
    vae_config_from_json,
    vae_from_json,
)

TOL = 1e-5
HOP = 1920


@pytest.fixture(scope="module")
def vae() -> FrameLinearVAE:
    return FrameLinearVAE.sinusoidal(latent_dim=8, sample_rate=48000, hop=HOP, io_channels=2, seed=7)


def max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, f"shape {tuple(a.shape)} != {tuple(b.shape)}"
    return (a - b).abs().max().item()


def tones_in_span(vae: FrameLinearVAE, frames: int, seed: int = 0) -> torch.Tensor:
    """(1, frames * hop) mono audio: the basis tones with a new random amplitude and phase in every frame."""
    gen = torch.Generator().manual_seed(seed)
    harmonics = sinusoid_harmonics(vae.latent_dim, vae.sample_rate, vae.downsampling_ratio, seed=7)
    n = torch.arange(frames * HOP, dtype=torch.float64)
    amp = torch.rand(len(harmonics), frames, generator=gen, dtype=torch.float64).repeat_interleave(HOP, dim=1) * 0.2
    phase = (torch.rand(len(harmonics), frames, generator=gen, dtype=torch.float64) * 2 * math.pi).repeat_interleave(
        HOP, dim=1
    )
    wave = sum(amp[i] * torch.cos(2 * math.pi * k * n / HOP + phase[i]) for i, k in enumerate(harmonics))
    return wave.float()[None]


# ------------------------------------------------------------------------------------------------ round trips
def test_basis_is_orthonormal_and_decoder_is_its_transpose(vae: FrameLinearVAE) -> None:
    w = vae.encoder.weight.double()
    assert w.shape == (8, 2 * HOP)
    assert max_err(w @ w.T, torch.eye(8, dtype=torch.float64)) <= 1e-6
    assert torch.equal(vae.decoder.weight, vae.encoder.weight.T)
    left, right = w[:, :HOP], w[:, HOP:]
    assert torch.equal(left, right), "the basis is the same on every channel (mono round-trips)"


def test_encode_of_decode_is_the_latent(vae: FrameLinearVAE) -> None:
    torch.manual_seed(0)
    z = torch.randn(3, 8, 11)
    with torch.no_grad():
        assert max_err(vae.encode(vae.decode(z), sample=False), z) <= TOL
        # posterior_std 0: a sample is the mean plus the release's 1e-4 floor times N(0, 1)
        assert max_err(vae.encode(vae.decode(z), sample=True), z) <= 6 * POSTERIOR_STD_FLOOR


def test_decode_of_encode_is_the_audio_for_audio_in_the_span(vae: FrameLinearVAE) -> None:
    mono = tones_in_span(vae, frames=6)
    assert mono.abs().max() > 0.1
    with torch.no_grad():
        stereo_in = mono[:, None].repeat(1, 2, 1)
        assert max_err(vae.decode(vae.encode(stereo_in, sample=False)), stereo_in) <= TOL
        # mono input (B, T) and (B, 1, T) is repeated to both channels, as OobleckVAE does
        assert max_err(vae.decode(vae.encode(mono, sample=False)), stereo_in) <= TOL
        assert max_err(vae.decode(vae.encode(mono[:, None], sample=False)), stereo_in) <= TOL


def test_audio_outside_the_span_is_projected_away(vae: FrameLinearVAE) -> None:
    used = set(sinusoid_harmonics(8, 48000, HOP, seed=7))
    k = next(k for k in range(5, 80) if k not in used)
    n = torch.arange(4 * HOP, dtype=torch.float64)
    tone = (0.5 * torch.cos(2 * math.pi * k * n / HOP)).float()[None]
    with torch.no_grad():
        assert vae.encode(tone, sample=False).abs().max() <= 1e-4


def test_a_sustained_tone_encodes_to_the_same_latent_in_every_frame(vae: FrameLinearVAE) -> None:
    k = sinusoid_harmonics(8, 48000, HOP, seed=7)[1]
    n = torch.arange(5 * HOP, dtype=torch.float64)
    tone = (0.3 * torch.sin(2 * math.pi * k * n / HOP + 0.4)).float()[None]
    with torch.no_grad():
        z = vae.encode(tone, sample=False)[0]
    assert z.abs().max() > 1.0
    assert max_err(z, z[:, :1].expand_as(z)) <= 1e-4


# ------------------------------------------------------------------------------------------------ the seed
def test_the_seed_picks_distinct_plausible_frequencies() -> None:
    a = sinusoid_harmonics(8, 48000, HOP, seed=1)
    assert a == sinusoid_harmonics(8, 48000, HOP, seed=1)
    assert len(set(a)) == 4 and a == sorted(a)
    assert all(SINUSOID_MIN_HZ <= k * 25 <= SINUSOID_MAX_HZ for k in a)
    assert any(sinusoid_harmonics(8, 48000, HOP, seed=s) != a for s in range(2, 6))
    one = FrameLinearVAE.sinusoidal(seed=1)
    assert torch.equal(one.encoder.weight, FrameLinearVAE.sinusoidal(seed=1).encoder.weight)
    assert not torch.equal(one.encoder.weight, FrameLinearVAE.sinusoidal(seed=2).encoder.weight)
    assert "Hz" in one.cfg.basis and "seed=1" in one.cfg.basis


def test_odd_latent_dim_other_geometry_and_gain() -> None:
    vae = FrameLinearVAE.sinusoidal(latent_dim=5, sample_rate=16000, hop=640, io_channels=1, seed=3, gain=0.05)
    assert (vae.latent_dim, vae.downsampling_ratio, vae.frame_rate, vae.in_channels) == (5, 640, 25.0, 1)
    z = torch.randn(2, 5, 4)
    with torch.no_grad():
        audio = vae.decode(z)
        assert audio.shape == (2, 1, 4 * 640)
        assert max_err(vae.encode(audio, sample=False), z) <= TOL
    w = vae.encoder.weight.double() / 0.05
    assert max_err(w @ w.T, torch.eye(5, dtype=torch.float64)) <= 1e-6


def test_sinusoidal_rejects_more_latents_than_harmonics() -> None:
    with pytest.raises(ValueError, match="harmonics"):
        FrameLinearVAE.sinusoidal(latent_dim=16, hop=16)
    with pytest.raises(ValueError, match="gain"):
        FrameLinearVAE.sinusoidal(gain=0.0)


# ------------------------------------------------------------------------------------------------ interface
def test_geometry_matches_the_oobleck_names(vae: FrameLinearVAE) -> None:
    oob = OobleckVAE(VAEConfig.tiny())
    for name in ("sample_rate", "downsampling_ratio", "latent_dim", "io_channels", "in_channels", "out_channels"):
        assert getattr(vae, name) == getattr(oob, name), name
    assert vae.frame_rate == oob.frame_rate == 25.0
    assert (vae.cfg.sample_rate, vae.cfg.downsampling_ratio) == (48000, HOP)  # what VAELatentEncoder reads
    assert vae.fold_weight_norm() is vae and sorted(vae.state_dict()) == ["decoder.weight", "encoder.weight"]


@pytest.mark.parametrize("samples", [HOP * 3, HOP * 3 + 1, HOP * 4 - 1])
def test_frames_are_whole_hops(vae: FrameLinearVAE, samples: int) -> None:
    wav = torch.randn(2, 2, samples) * 0.1
    with torch.no_grad():
        mean, scale = vae.encode_moments(wav)
        assert mean.shape == scale.shape == (2, 8, samples // HOP) and mean.dtype == torch.float32
        assert torch.allclose(posterior_std(scale), torch.full_like(scale, POSTERIOR_STD_FLOOR))
        assert vae.decode(mean).shape == (2, 2, (samples // HOP) * HOP)


def test_short_and_wrong_inputs(vae: FrameLinearVAE) -> None:
    assert vae.encode(torch.zeros(2, MIN_ENCODE_SAMPLES - 1)).shape == (2, 8, 0)  # the release's null prompt
    assert vae.encode(torch.zeros(2, MIN_ENCODE_SAMPLES)).shape == (2, 8, 1)
    assert vae.decode(torch.zeros(1, 8, 0)).shape == (1, 2, 0)
    with pytest.raises(ValueError, match="3 channels"):
        vae.encode(torch.zeros(1, 3, 4000))
    with pytest.raises(ValueError, match="waveform"):
        vae.encode(torch.zeros(4000))
    with pytest.raises(ValueError, match=r"latent \(B, 8, F\)"):
        vae.decode(torch.zeros(1, 7, 3))
    with pytest.raises(ValueError, match="noise shape"):
        vae.sample(torch.zeros(1, 8, 2), torch.zeros(1, 8, 2), torch.zeros(1, 8, 3))


def test_posterior_std_scales_the_noise() -> None:
    vae = FrameLinearVAE.sinusoidal(seed=0, posterior_std=0.5)
    wav = torch.randn(1, 2, HOP * 2) * 0.1
    noise = torch.randn(1, 8, 2)
    with torch.no_grad():
        mean, scale = vae.encode_moments(wav)
        assert torch.allclose(posterior_std(scale), torch.full_like(mean, 0.5))
        assert max_err(vae.encode(wav, noise=noise), mean + 0.5 * noise) <= 1e-6
        assert max_err(vae.sample(mean, scale, noise), mean + 0.5 * noise) <= 1e-6


@pytest.mark.parametrize("frames", [3, 127, 128, 300])
def test_chunked_decode_is_the_one_pass_decode(vae: FrameLinearVAE, frames: int) -> None:
    z = torch.randn(1, 8, frames)
    with torch.no_grad():
        assert torch.equal(vae.decode(z, chunked=True), vae.decode(z))
        assert torch.equal(vae.decode(z, chunked=True, chunk_size=4, overlap=2), vae.decode(z))
    with pytest.raises(ValueError, match="chunk_size > overlap"):
        vae.decode(z, chunked=True, chunk_size=4, overlap=4)


def test_stays_float32(vae: FrameLinearVAE, caplog: pytest.LogCaptureFixture) -> None:
    parent = torch.nn.Module()
    parent.vae = FrameLinearVAE.sinusoidal(seed=7)
    parent.to(torch.bfloat16)
    assert parent.vae.encoder.weight.dtype == torch.float32
    assert "FrameLinearVAE stays float32" in caplog.text
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        z = parent.vae.encode(torch.randn(1, 2, HOP * 2).bfloat16(), sample=False)
        assert z.dtype == torch.float32 and parent.vae.decode(z.bfloat16()).dtype == torch.float32


# ------------------------------------------------------------------------------------------------ json
def test_config_json_round_trip(tmp_path: Path, vae: FrameLinearVAE) -> None:
    path = tmp_path / "v.json"
    vae.cfg.to_json(path)
    raw = json.loads(path.read_text())
    assert raw["model_type"] == FRAME_LINEAR_MODEL_TYPE == "songbloom_frame_linear"
    assert {k: raw[k] for k in ("sample_rate", "hop", "latent_dim", "io_channels")} == {
        "sample_rate": 48000,
        "hop": HOP,
        "latent_dim": 8,
        "io_channels": 2,
    }
    assert FrameLinearConfig.from_json(path) == vae.cfg


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hop": 0}, "hop must be a positive integer"),
        ({"latent_dim": 2.5}, "latent_dim must be a positive integer"),
        ({"posterior_std": -1}, "posterior_std"),
        ({"latent_dim": 5000}, "exceeds"),
        ({"hop_size": 3}, "unknown keys"),
        ({"model_type": "autoencoder"}, "model_type"),
    ],
)
def test_config_errors_name_the_field(change: dict, message: str) -> None:
    d = {**FrameLinearConfig(48000, HOP, 8).to_dict(), **change}
    with pytest.raises(ValueError, match=message):
        FrameLinearConfig.from_dict(d)


def test_config_json_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text(json.dumps({"model_type": FRAME_LINEAR_MODEL_TYPE, "sample_rate": 48000, "hop": HOP}))
    with pytest.raises(ValueError, match=r"broken\.json: missing keys \['latent_dim'\]"):
        FrameLinearConfig.from_json(path)


# ------------------------------------------------------------------------------------------------ the factory
def test_factory_dispatches_on_model_type(tmp_path: Path) -> None:
    oob, frame, legacy = tmp_path / "oob.json", tmp_path / "frame.json", tmp_path / "legacy.json"
    VAEConfig.tiny().to_json(oob)
    FrameLinearConfig(48000, HOP, 8, basis="test").to_json(frame)
    no_type = VAEConfig.tiny().to_dict()
    del no_type["model_type"]  # older stable-audio files omit it: the Oobleck VAE
    legacy.write_text(json.dumps(no_type))
    assert vae_config_from_json(oob) == VAEConfig.tiny() == vae_config_from_json(legacy)
    assert type(vae_from_json(oob)) is OobleckVAE and type(vae_from_json(legacy)) is OobleckVAE
    assert vae_config_from_json(frame) == FrameLinearConfig(48000, HOP, 8, basis="test")
    built = vae_from_json(frame)
    assert type(built) is FrameLinearVAE and built.latent_dim == 8
    assert type(build_vae(VAEConfig.tiny())) is OobleckVAE
    assert set(VAE_MODEL_TYPES) == {"autoencoder", "songbloom_frame_linear"}


def test_factory_names_the_file_and_the_valid_types(tmp_path: Path) -> None:
    path = tmp_path / "mystery_vae.json"
    path.write_text(json.dumps({"model_type": "dac", "sample_rate": 44100}))
    with pytest.raises(ValueError, match="mystery_vae.json") as err:
        vae_config_from_json(path)
    assert "'dac'" in str(err.value) and "'autoencoder'" in str(err.value) and FRAME_LINEAR_MODEL_TYPE in str(err.value)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        vae_config_from_json(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json: not valid JSON"):
        vae_config_from_json(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="json object"):
        vae_config_from_dict([1, 2])
    with pytest.raises(TypeError, match="build_vae"):
        build_vae({"model_type": "autoencoder"})
