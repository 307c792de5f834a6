"""The frame-linear proxy VAE on disk: save_frame_vae, weights-only / safetensors loading, strict keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from songbloom.checkpoints.strict import CheckpointMismatchError
from songbloom.checkpoints.vae import FRAME_VAE_STEM, load_vae, load_vae_checkpoint, save_frame_vae, vae_from_files
from songbloom.models.frame_vae import FrameLinearVAE
from songbloom.models.vae import OobleckVAE, VAEConfig


@pytest.fixture(scope="module")
def frame_vae() -> FrameLinearVAE:
    return FrameLinearVAE.sinusoidal(latent_dim=8, seed=11)


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_save_then_load_gives_the_same_vae(tmp_path: Path, frame_vae: FrameLinearVAE) -> None:
    json_path, ckpt_path = save_frame_vae(frame_vae, tmp_path / "vae")
    assert (json_path.name, ckpt_path.name) == (f"{FRAME_VAE_STEM}.json", f"{FRAME_VAE_STEM}.ckpt")
    raw = torch.load(ckpt_path, weights_only=True)  # tensors only: loadable without pickle code
    assert list(raw) == ["state_dict"] and sorted(raw["state_dict"]) == ["decoder.weight", "encoder.weight"]
    assert json.loads(json_path.read_text())["model_type"] == "songbloom_frame_linear"
    loaded = vae_from_files(json_path, ckpt_path)
    assert type(loaded) is FrameLinearVAE and loaded.cfg == frame_vae.cfg and not loaded.training
    assert same_weights(loaded, frame_vae)
    z = torch.randn(1, 8, 3)
    with torch.no_grad():
        assert torch.equal(loaded.decode(z), frame_vae.decode(z))
    again = load_vae(json_path, ckpt_path)  # the other reader (eval adapters, preprocessing) dispatches too
    assert type(again) is FrameLinearVAE and same_weights(again, frame_vae)


def test_safetensors_weights(tmp_path: Path, frame_vae: FrameLinearVAE) -> None:
    json_path, st_path = save_frame_vae(frame_vae, tmp_path, stem="proxy", safetensors=True)
    assert st_path.name == "proxy.safetensors" and json_path.name == "proxy.json"
    assert sorted(load_vae_checkpoint(st_path)) == ["decoder.weight", "encoder.weight"]
    assert same_weights(vae_from_files(json_path, st_path), frame_vae)
    assert same_weights(load_vae(json_path, st_path), frame_vae)


def test_save_refuses_other_vaes_and_odd_stems(tmp_path: Path, frame_vae: FrameLinearVAE) -> None:
    with pytest.raises(TypeError, match="FrameLinearVAE"):
        save_frame_vae(OobleckVAE(VAEConfig.tiny()), tmp_path)
    with pytest.raises(ValueError, match="stem"):
        save_frame_vae(frame_vae, tmp_path, stem="../x")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda sd: {**sd, "encoder.bias": torch.zeros(8)}, "encoder.bias"),
        (lambda sd: {"encoder.weight": sd["encoder.weight"]}, "decoder.weight"),
        (lambda sd: {**sd, "encoder.weight": sd["encoder.weight"][:, :100]}, "encoder.weight"),
    ],
    ids=["unexpected key", "missing key", "wrong shape"],
)
def test_strict_loading(tmp_path: Path, frame_vae: FrameLinearVAE, mutate, message: str) -> None:
    json_path, ckpt_path = save_frame_vae(frame_vae, tmp_path)
    sd = mutate(torch.load(ckpt_path, weights_only=True)["state_dict"])
    torch.save({"state_dict": sd}, ckpt_path)
    with pytest.raises(CheckpointMismatchError, match=message):
        vae_from_files(json_path, ckpt_path)
    with pytest.raises(ValueError, match=message):
        load_vae(json_path, ckpt_path)


def test_keys_outside_encoder_decoder_are_refused(tmp_path: Path, frame_vae: FrameLinearVAE) -> None:
    json_path, _ = save_frame_vae(frame_vae, tmp_path)
    bad = tmp_path / "bad.safetensors"
    save_file({"vae.encoder.weight": frame_vae.encoder.weight.detach().clone()}, bad)
    with pytest.raises(CheckpointMismatchError, match="must start with encoder. or decoder."):
        vae_from_files(json_path, bad)


def test_a_json_of_another_kind_does_not_take_these_weights(tmp_path: Path, frame_vae: FrameLinearVAE) -> None:
    _, ckpt_path = save_frame_vae(frame_vae, tmp_path)
    oob_json = tmp_path / "oob.json"
    VAEConfig.tiny().to_json(oob_json)
    with pytest.raises(CheckpointMismatchError):
        vae_from_files(oob_json, ckpt_path)
