"""The Oobleck VAE against the official code's outputs (fixture ``upstream_tiny_a``) and the release geometry."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from songbloom.checkpoints.vae import load_vae
from songbloom.models.vae import MIN_ENCODE_SAMPLES, OobleckVAE, VAEConfig, plan_chunks
from songbloom.models.vae_blocks import WNConvTranspose1d

TOL = 1e-5
RELEASE_VAE_PARAMS = 168_695_426


def max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, f"shape {tuple(a.shape)} != {tuple(b.shape)}"
    return (a - b).abs().max().item()


@pytest.fixture(scope="module")
def fixture_vae(tiny_a_dir: Path) -> OobleckVAE:
    return load_vae(tiny_a_dir / "vae.json", tiny_a_dir / "vae.ckpt")


@pytest.fixture(scope="module")
def release_json(shared_dir: Path) -> dict:
    return json.loads((shared_dir / "reference" / "release_config" / "stable_audio_1920_vae.json").read_text())


# ------------------------------------------------------------------------------------------------ config


def test_release_config_equals_the_released_json(shared_dir: Path, release_json: dict) -> None:
    cfg = VAEConfig.release()
    assert cfg.to_dict() == release_json
    assert VAEConfig.from_json(shared_dir / "reference" / "release_config" / "stable_audio_1920_vae.json") == cfg
    assert (cfg.sample_rate, cfg.downsampling_ratio, cfg.latent_dim, cfg.io_channels) == (48000, 1920, 64, 2)
    assert cfg.frame_rate == 25.0


def test_tiny_config_keeps_the_release_frame_geometry() -> None:
    cfg = VAEConfig.tiny()
    assert (cfg.sample_rate, cfg.downsampling_ratio, cfg.frame_rate, cfg.io_channels) == (48000, 1920, 25.0, 2)
    assert VAEConfig.from_dict(cfg.to_dict()) == cfg
    n_params = sum(p.numel() for p in OobleckVAE(cfg).parameters())
    assert 1_000 <= n_params <= 20_000


def test_fixture_config_parses(tiny_a_dir: Path) -> None:
    cfg = VAEConfig.from_json(tiny_a_dir / "vae.json")
    assert (cfg.latent_dim, cfg.downsampling_ratio, cfg.encoder.latent_dim) == (8, 8, 16)
    assert cfg.encoder.strides == (2, 4) and cfg.decoder.final_tanh is False and cfg.decoder.soft_clip is False
    assert json.loads((tiny_a_dir / "vae.json").read_text()) == cfg.to_dict()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["model"].update(latent_dim=32), "model.decoder.config.latent_dim"),
        (lambda d: d["model"].update(downsampling_ratio=1000), "multiply to 1920"),
        (lambda d: d["model"]["decoder"]["config"].update(strides=[2, 4, 4, 5, 12]), "must all be even"),
        (lambda d: d["model"]["encoder"]["config"].update(kernel=3), "unknown keys ['kernel']"),
        (lambda d: d["model"].update(bottleneck={"type": "rvq"}), "model.bottleneck"),
        (lambda d: d["model"]["encoder"]["config"].update(antialias_activation=True), "antialias_activation"),
    ],
)
def test_bad_config_names_the_field(release_json: dict, edit, message: str) -> None:
    d = json.loads(json.dumps(release_json))
    edit(d)
    with pytest.raises(ValueError) as err:
        VAEConfig.from_dict(d)
    assert message in str(err.value)


def test_soft_clip_is_read_from_the_decoder_section(release_json: dict) -> None:
    d = json.loads(json.dumps(release_json))
    d["model"]["decoder"]["soft_clip"] = True
    cfg = VAEConfig.from_dict(d)
    assert cfg.decoder.soft_clip and cfg.to_dict() == d


# ------------------------------------------------------------------------------------- release geometry


def test_release_geometry_has_the_release_keys_and_parameter_count(shared_dir: Path) -> None:
    listing = json.loads((shared_dir / "reference" / "release_keys_full.json").read_text())
    prefix = "vae.vae."
    expected = {k[len(prefix) :]: tuple(s) for k, s in listing["keys"].items() if k.startswith(prefix)}
    assert expected, "release_keys_full.json lists no vae.vae.* keys"
    with torch.device("meta"):
        vae = OobleckVAE(VAEConfig.release())
    got = {k: tuple(v.shape) for k, v in vae.state_dict().items()}
    assert got == expected
    assert sum(p.numel() for p in vae.parameters()) == RELEASE_VAE_PARAMS == listing["vae_params"]


def test_transposed_conv_weight_norm_runs_over_the_input_channel_axis() -> None:
    conv = WNConvTranspose1d(6, 3, kernel_size=4, stride=2, padding=1)
    assert conv.weight_g.shape == (6, 1, 1) and conv.weight_v.shape == (6, 3, 4) and conv.bias.shape == (3,)
    with torch.no_grad():
        conv.weight_g.mul_(torch.arange(1.0, 7.0).view(6, 1, 1))
    w = conv.effective_weight()
    torch.testing.assert_close(w.flatten(1).norm(dim=1), conv.weight_g.flatten())


# --------------------------------------------------------------------------------- official outputs


def test_encoder_and_posterior_match_official(fixture_vae: OobleckVAE, tiny_a_cases: dict) -> None:
    c = tiny_a_cases
    with torch.inference_mode():
        assert max_err(fixture_vae.encoder(c["vae.wav"]), c["vae.encoder_raw"]) <= TOL
        mean, scale = fixture_vae.encode_moments(c["vae.wav"])
        latent = fixture_vae.encode(c["vae.wav"], noise=c["vae.sample_noise"])
        deterministic = fixture_vae.encode(c["vae.wav"], sample=False)
    assert max_err(mean, c["vae.mean"]) <= TOL
    assert max_err(scale, c["vae.scale"]) <= TOL
    assert max_err(latent, c["vae.sampled_latent"]) <= TOL
    assert max_err(deterministic, c["vae.mean"]) <= TOL


def test_sampling_draws_from_the_global_rng_like_official(fixture_vae: OobleckVAE, tiny_a_cases: dict) -> None:
    wav = tiny_a_cases["vae.wav"]
    with torch.inference_mode():
        mean, scale = fixture_vae.encode_moments(wav)
        torch.manual_seed(5)
        drawn = fixture_vae.encode(wav)
        torch.manual_seed(5)
        noise = torch.randn_like(mean)
    assert max_err(drawn, OobleckVAE.sample(mean, scale, noise)) == 0.0


def test_prompt_latent_from_mono_wav_matches_official(fixture_vae: OobleckVAE, tiny_a_cases: dict) -> None:
    c = tiny_a_cases
    assert c["prompt.vae_wav"].shape[1] == 1
    with torch.inference_mode():
        latent = fixture_vae.encode(c["prompt.vae_wav"], noise=c["prompt.vae_noise"])
        from_2d = fixture_vae.encode(c["prompt.vae_wav"][:, 0], noise=c["prompt.vae_noise"])
    assert max_err(latent, c["prompt.vae_latent"]) <= TOL
    assert max_err(from_2d, latent) == 0.0


def test_short_wav_gives_an_empty_latent_without_drawing_noise(fixture_vae: OobleckVAE, tiny_a_cases: dict) -> None:
    length = tiny_a_cases["vae.short_wav_len"]
    assert length == MIN_ENCODE_SAMPLES - 1
    state = torch.get_rng_state()
    latent = fixture_vae.encode(torch.randn(1, 1, length, generator=torch.Generator().manual_seed(0)))
    assert list(latent.shape) == tiny_a_cases["vae.short_latent_shape"] == [1, 8, 0]
    assert latent.dtype == torch.float32
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize(
    ("latent_key", "audio_key", "chunk_key", "overlap_key"),
    [
        ("vae.dec_latent", "vae.dec_audio", None, None),
        ("gen.latent_seq", "gen.audio_unchunked", None, None),
        ("vae.long_latent", "vae.long_audio_unchunked", None, None),
        ("vae.long_latent", "vae.long_audio_chunked", "vae.long_chunk_size", "vae.long_overlap"),
        ("vae.small_latent", "vae.small_audio_unchunked", None, None),
        ("vae.small_latent", "vae.small_audio_chunked", "vae.small_chunk_size", "vae.small_overlap"),
    ],
)
def test_decode_matches_official(fixture_vae, tiny_a_cases, latent_key, audio_key, chunk_key, overlap_key) -> None:
    c = tiny_a_cases
    kwargs = {} if chunk_key is None else {"chunked": True, "chunk_size": c[chunk_key], "overlap": c[overlap_key]}
    with torch.inference_mode():
        audio = fixture_vae.decode(c[latent_key], **kwargs)
    assert audio.dtype == torch.float32
    assert max_err(audio, c[audio_key]) <= TOL


def test_chunked_decode_really_differs_from_one_pass(tiny_a_cases: dict) -> None:
    # Guards the two chunk tests above: they would also pass for a decoder that ignored `chunked` otherwise.
    assert max_err(tiny_a_cases["vae.small_audio_chunked"], tiny_a_cases["vae.small_audio_unchunked"]) > 1e-2


def test_chunked_decode_of_a_short_latent_is_the_one_pass_decode(fixture_vae: OobleckVAE, tiny_a_cases: dict) -> None:
    latent = tiny_a_cases["vae.dec_latent"]  # 40 frames < 128: the official chunked decode crashes here
    with torch.inference_mode():
        chunked = fixture_vae.decode(latent, chunked=True, chunk_size=128, overlap=32)
        exactly_one_chunk = fixture_vae.decode(latent, chunked=True, chunk_size=40, overlap=8)
    assert chunked.shape == (1, 2, 40 * fixture_vae.downsampling_ratio)
    assert max_err(chunked, tiny_a_cases["vae.dec_audio"]) <= TOL
    assert max_err(exactly_one_chunk, chunked) == 0.0


def test_decode_of_an_empty_latent_is_empty(fixture_vae: OobleckVAE) -> None:
    audio = fixture_vae.decode(torch.zeros(2, 8, 0), chunked=True)
    assert audio.shape == (2, 2, 0)


def test_plan_chunks_follows_the_release_layout() -> None:
    plan = plan_chunks(300, 128, 32)
    assert [p.start for p in plan] == [0, 96, 172]  # the third chunk is end-aligned
    assert [(p.out_start, p.out_end) for p in plan] == [(0, 112), (112, 208), (188, 300)]
    exact = plan_chunks(224, 128, 32)  # 96 + 128 == 224: no extra chunk
    assert [(p.start, p.out_start, p.out_end) for p in exact] == [(0, 0, 112), (96, 112, 224)]
    assert [(p.start, p.out_start, p.out_end) for p in plan_chunks(128, 128, 32)] == [(0, 0, 128)]
    with pytest.raises(ValueError, match="chunk_size > overlap"):
        plan_chunks(300, 32, 32)


# ------------------------------------------------------------------------------------------ loading


def test_loading_another_geometry_names_the_mismatched_keys(tiny_a_dir: Path, tmp_path: Path) -> None:
    other = VAEConfig.from_json(tiny_a_dir / "vae.json").to_dict()
    other["model"]["encoder"]["config"]["channels"] = 4
    other["model"]["decoder"]["config"]["channels"] = 4
    ckpt = tmp_path / "other.ckpt"
    torch.save({"state_dict": OobleckVAE(VAEConfig.from_dict(other)).state_dict()}, ckpt)
    with pytest.raises(ValueError) as err:
        load_vae(tiny_a_dir / "vae.json", ckpt)
    message = str(err.value)
    assert str(ckpt) in message and "shape mismatches" in message
    assert "encoder.layers.0.weight_v: checkpoint (4, 2, 7), model (8, 2, 7)" in message


def test_loading_reports_missing_and_unexpected_keys(tiny_a_dir: Path, tmp_path: Path) -> None:
    state = torch.load(tiny_a_dir / "vae.ckpt", weights_only=True)["state_dict"]
    state.pop("decoder.layers.4.weight_g")
    state["decoder.layers.4.bias"] = torch.zeros(2)
    ckpt = tmp_path / "edited.ckpt"
    torch.save(state, ckpt)  # flat state dicts are accepted too
    with pytest.raises(ValueError) as err:
        load_vae(tiny_a_dir / "vae.json", ckpt)
    message = str(err.value)
    assert "1 missing keys" in message and "decoder.layers.4.weight_g" in message
    assert "1 unexpected keys" in message and "decoder.layers.4.bias" in message


def test_loaded_vae_is_frozen_and_in_eval_mode(fixture_vae: OobleckVAE) -> None:
    assert not fixture_vae.training
    assert not any(p.requires_grad for p in fixture_vae.parameters())


# ------------------------------------------------------------------------------------------ precision


def test_vae_stays_float32_when_a_parent_is_cast(fixture_vae: OobleckVAE, tiny_a_cases: dict) -> None:
    parent = torch.nn.ModuleDict({"vae": OobleckVAE(fixture_vae.cfg)})
    parent["vae"].load_state_dict(fixture_vae.state_dict())
    parent.to(torch.bfloat16)
    parent.half()
    assert all(p.dtype == torch.float32 for p in parent["vae"].parameters())
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        latent = parent["vae"].encode(tiny_a_cases["vae.wav"].bfloat16(), sample=False)
        audio = parent["vae"].decode(tiny_a_cases["vae.dec_latent"])
    assert latent.dtype == audio.dtype == torch.float32
    assert max_err(audio, tiny_a_cases["vae.dec_audio"]) <= TOL
    # The only difference left is the bf16 rounding of the input waveform
    # (docs/design/fidelity.md#prompt-bf16-rounding).
    with torch.inference_mode():
        reference = fixture_vae.encode(tiny_a_cases["vae.wav"].bfloat16().float(), sample=False)
    assert max_err(latent, reference) <= TOL


def test_folded_weight_norm_gives_the_same_audio_and_tracks_weight_updates(fixture_vae: OobleckVAE) -> None:
    vae = OobleckVAE(fixture_vae.cfg).eval()
    vae.load_state_dict(fixture_vae.state_dict())
    latent = torch.randn(1, 8, 12, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        plain = vae.decode(latent)
        vae.fold_weight_norm()
        folded = vae.decode(latent)
        assert max_err(folded, plain) == 0.0
    with torch.no_grad():
        vae.decoder.layers[0].weight_g.mul_(2.0)
    with torch.inference_mode():
        assert max_err(vae.decode(latent), plain) > 1e-3
        vae.fold_weight_norm(False)


def test_encode_rejects_an_unexpected_channel_count(fixture_vae: OobleckVAE) -> None:
    with pytest.raises(ValueError, match="3 channels"):
        fixture_vae.encode(torch.zeros(1, 3, 4096))
    assert math.isclose(fixture_vae.frame_rate, 6000.0)


def test_loading_a_prefixed_checkpoint_says_which_prefix_to_strip(tiny_a_dir: Path, tmp_path: Path) -> None:
    state = torch.load(tiny_a_dir / "vae.ckpt", weights_only=True)["state_dict"]
    ckpt = tmp_path / "songbloom_like.pt"
    torch.save({f"vae.vae.{k}": v for k, v in state.items()}, ckpt)
    with pytest.raises(ValueError, match="prefix 'vae.vae.'"):
        load_vae(tiny_a_dir / "vae.json", ckpt)


def test_parameters_are_float32_even_under_a_bf16_default_dtype() -> None:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        vae = OobleckVAE(VAEConfig.tiny())
    finally:
        torch.set_default_dtype(previous)
    assert {p.dtype for p in vae.parameters()} == {torch.float32}
