"""The one-call API: build from a release directory, strict weights, teacher-forced forward."""

from __future__ import annotations

import shutil

import pytest
import torch

from songbloom.checkpoints.bundle import SongBloom, find_release_yaml


def test_from_release_dir_matches_fixture(tiny_a_dir, tiny_a_cases):
    c = tiny_a_cases
    sb = SongBloom.from_release_dir(tiny_a_dir)
    assert find_release_yaml(tiny_a_dir).name == "config.yaml"
    assert sb.config.model.dim == 96 and sb.vae.latent_dim == 8
    # The VAE comes from the .pt's vae.vae.* block: the prompt path reproduces the official latent.
    with torch.no_grad():
        mean, scale = sb.vae.encode_moments(c["prompt.vae_wav"])
        latent = sb.vae.sample(mean, scale, noise=c["prompt.vae_noise"])
    torch.testing.assert_close(latent, c["prompt.vae_latent"], atol=1e-5, rtol=0)
    # Teacher-forced forward through the API with lyric strings.
    ids = [sb.tokenize_lyrics(t) for t in c["train.attr_lyrics"]]
    with torch.no_grad():
        cond = sb.model.encode_conditions(
            ids, c["prompt.batch_latent"], c["prompt.batch_wav_lengths"], c["prompt.batch_wav"].shape[-1]
        )
        torch.manual_seed(c["train.seed"])
        out = sb.model(c["train.x_sketch"], c["train.x_latent"], c["train.x_len"], cond)
    torch.testing.assert_close(out.ar_logit, c["train.ar_logit"], atol=1e-5, rtol=0)
    torch.testing.assert_close(out.nar_pred, c["train.nar_pred"], atol=1e-5, rtol=0)


def test_release_era_duplicate_vae_block_is_accepted(tiny_a_dir, tmp_path, caplog):
    for f in tiny_a_dir.iterdir():
        if f.suffix != ".md":
            shutil.copy(f, tmp_path / f.name)
    sd = torch.load(tiny_a_dir / "model.pt", weights_only=True)
    dup = "model.condition_provider.conditioners.prompt_wav.tokenizer.vae."
    sd.update({dup + k[len("vae.vae."):]: v.clone() for k, v in sd.items() if k.startswith("vae.vae.")})
    torch.save(sd, tmp_path / "model.pt")
    sb = SongBloom.from_release_dir(tmp_path)
    ref = SongBloom.from_release_dir(tiny_a_dir)
    for (k, a), (_, b) in zip(sb.model.state_dict().items(), ref.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_other_geometry_fails_naming_keys(tiny_a_dir, tmp_path):
    for f in tiny_a_dir.iterdir():
        if f.suffix != ".md":
            shutil.copy(f, tmp_path / f.name)
    text = (tmp_path / "config.yaml").read_text().replace("num_pitch: 32", "num_pitch: 40")
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(ValueError, match="skeleton_emb.weight"):
        SongBloom.from_release_dir(tmp_path)


def test_bf16_generator_keeps_fp32_vae(tiny_a_dir):
    sb = SongBloom.from_release_dir(tiny_a_dir, dtype=torch.bfloat16)
    assert next(sb.model.parameters()).dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in sb.vae.parameters())
