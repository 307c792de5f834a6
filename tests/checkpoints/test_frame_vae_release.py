"""A release-format directory whose YAML names a frame-linear VAE: it loads by every route and generates.

This is how the sketch-recovery proxy (issue #17) hands its teacher to a subprocess: the release file set with
the proxy VAE's json + checkpoint in place of the Stable Audio ones.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from songbloom.checkpoints.bundle import SongBloom
from songbloom.checkpoints.formats.merged import export_merged, load_merged_export
from songbloom.checkpoints.formats.release import export_release
from songbloom.checkpoints.registry import load_checkpoint
from songbloom.checkpoints.release_state import save_release_checkpoint
from songbloom.checkpoints.release_yaml_writer import write_release_yaml
from songbloom.checkpoints.vae import save_frame_vae
from songbloom.config import SongBloomConfig
from songbloom.inference.generate import SamplingParams
from songbloom.inference.pipeline import SongBloomPipeline, SongRequest
from songbloom.inference.prompt import prompt_moments
from songbloom.models.frame_vae import FrameLinearVAE
from songbloom.models.songbloom import SongBloomModel

NAME = "proxy_teacher"
VAE_SEED = 5


def write_frame_release(folder: Path, *, vae_in_pt: bool) -> tuple[SongBloomModel, FrameLinearVAE]:
    """The release file set of the tiny preset (latent_dim 8, 48 kHz) with a sinusoidal frame VAE."""
    cfg = SongBloomConfig.from_name("tiny")
    assert (cfg.model.latent_dim, cfg.sr) == (8, 48000)
    torch.manual_seed(123)
    model = SongBloomModel(cfg.model).eval()
    with torch.no_grad():
        model.skeleton_classifier[-1].bias[cfg.model.eos_id] = -1e4  # no early EOS: the song length is known
    vae = FrameLinearVAE.sinusoidal(latent_dim=8, sample_rate=48000, hop=1920, seed=VAE_SEED)
    json_path, ckpt_path = save_frame_vae(vae, folder)
    write_release_yaml(
        cfg,
        folder,
        yaml_name=f"{NAME}.yaml",
        pt_name=f"{NAME}.pt",
        vae_json_name=json_path.name,
        vae_ckpt_name=ckpt_path.name,
    )
    save_release_checkpoint(folder / f"{NAME}.pt", model.state_dict(), vae.state_dict() if vae_in_pt else {})
    return model, vae


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> tuple[Path, SongBloomModel, FrameLinearVAE]:
    folder = tmp_path_factory.mktemp("frame_release")
    model, vae = write_frame_release(folder, vae_in_pt=True)
    return folder, model, vae


@pytest.mark.parametrize("vae_in_pt", [True, False], ids=["vae in the .pt", "vae from the YAML's ckpt"])
def test_release_dir_loads_the_frame_vae(tmp_path: Path, vae_in_pt: bool) -> None:
    model, vae = write_frame_release(tmp_path, vae_in_pt=vae_in_pt)
    bundle = SongBloom.from_release_dir(tmp_path)
    assert type(bundle.vae) is FrameLinearVAE and bundle.vae.cfg == vae.cfg
    assert same_weights(bundle.vae, vae) and same_weights(bundle.model, model)
    for path in (tmp_path, tmp_path / f"{NAME}.pt"):  # the registry's release_dir and release_pt formats
        loaded = load_checkpoint(path)
        assert type(loaded.vae) is FrameLinearVAE and same_weights(loaded.vae, vae), path


def test_release_dir_generates_and_the_audio_round_trips(release) -> None:
    folder, _, vae = release
    bundle = SongBloom.from_release_dir(folder)
    params = SamplingParams(bundle.config.inference, max_frames=8, steps=2)
    n = torch.arange(2 * 48000, dtype=torch.float64)
    prompt = (0.2 * torch.cos(2 * math.pi * 300 * n / 48000)).float()[None]  # (1, T) mono, 2 s
    moments = prompt_moments(bundle.vae, prompt)
    assert moments is not None and moments.mean.shape == (1, 8, 50)
    lyric_ids = bundle.vocab.tokenize("[verse] n i h ao , [chorus] w o").ids
    pipeline = SongBloomPipeline(bundle, params, chunked_decode=True)
    result = pipeline.generate([SongRequest("s0", lyric_ids, moments, seed=3)])[0]
    latent = result.song.release_latent()
    frames = latent.shape[-1]
    assert frames >= 4 and result.sample_rate == 48000
    assert result.audio.shape == (2, frames * 1920) and torch.isfinite(result.audio).all()
    with torch.no_grad():
        assert torch.equal(result.audio, vae.decode(latent[None].float())[0])  # chunked == one pass
        back = vae.encode(result.audio[None], sample=False)[0]  # what a proxy reads back from the audio
        mono_back = vae.encode(result.audio.mean(0, keepdim=True)[None], sample=False)[0]
    scale = latent.abs().max().item()
    assert (back - latent).abs().max().item() <= 1e-5 * max(1.0, scale)
    assert (mono_back - latent).abs().max().item() <= 1e-5 * max(1.0, scale)
    again = pipeline.generate([SongRequest("s0", lyric_ids, moments, seed=3)])[0]
    assert torch.equal(again.audio, result.audio)  # the posterior std is 0: the prompt latent is the mean


def test_exports_keep_the_frame_vae(release, tmp_path: Path) -> None:
    folder, _, vae = release
    bundle = SongBloom.from_release_dir(folder)
    written = export_release(bundle.model, bundle.config, bundle.vae, tmp_path / "release", name="again")
    assert json.loads(written["vae_json"].read_text())["model_type"] == "songbloom_frame_linear"
    reloaded = SongBloom.from_release_dir(tmp_path / "release")
    assert type(reloaded.vae) is FrameLinearVAE and same_weights(reloaded.vae, vae)
    export_merged(bundle.model, bundle.config, tmp_path / "merged", vae=bundle.vae)
    _, _, merged_vae, _ = load_merged_export(tmp_path / "merged")
    assert type(merged_vae) is FrameLinearVAE and same_weights(merged_vae, vae)
    assert type(load_checkpoint(tmp_path / "merged").vae) is FrameLinearVAE


def test_unknown_vae_kind_names_the_file_and_the_valid_kinds(tmp_path: Path) -> None:
    write_frame_release(tmp_path, vae_in_pt=False)
    vae_json = tmp_path / "frame_linear_vae.json"
    vae_json.write_text(json.dumps({**json.loads(vae_json.read_text()), "model_type": "mel_gan"}))
    with pytest.raises(ValueError, match="frame_linear_vae.json") as err:
        SongBloom.from_release_dir(tmp_path)
    assert "'mel_gan'" in str(err.value)
    assert "'autoencoder'" in str(err.value) and "'songbloom_frame_linear'" in str(err.value)


def test_latent_dim_mismatch_is_refused(tmp_path: Path) -> None:
    write_frame_release(tmp_path, vae_in_pt=False)
    other = FrameLinearVAE.sinusoidal(latent_dim=6, seed=VAE_SEED)
    save_frame_vae(other, tmp_path)  # overwrites the json + ckpt the YAML names
    with pytest.raises(ValueError, match="latent_dim 6 != model.latent_dim 8"):
        SongBloom.from_release_dir(tmp_path)
