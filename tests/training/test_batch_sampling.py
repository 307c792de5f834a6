"""Sampling stored VAE moments in the training batch follows the VAE's own posterior rule."""

import torch

from songbloom.models.vae import OobleckVAE, posterior_std, scale_for_std
from songbloom.training.batch import as_training_batch


def _mapping_batch(scale: torch.Tensor) -> dict:
    b, d, t = scale.shape
    return {"x_sketch": torch.zeros(b, t, dtype=torch.long), "x_latent": torch.zeros(b, d, t),
            "x_latent_scale": scale, "x_len": torch.full((b,), t), "lyric_ids": [torch.tensor([1])] * b,
            "prompt_latent": None}


def test_sampled_latents_use_softplus_of_the_stored_scale() -> None:
    # The release VAE's pre-softplus scales sit around -5 (std ~0.0068); using them as a std adds noise of ~5.
    scale = torch.full((2, 8, 400), -5.0)
    torch.manual_seed(0)
    batch = as_training_batch(_mapping_batch(scale), sample_latents=True)
    expected = float(posterior_std(torch.tensor(-5.0)))
    assert abs(float(batch.latents.std()) - expected) < 0.1 * expected


def test_training_noise_matches_the_vae_sample() -> None:
    scale = torch.randn(1, 8, 50)
    torch.manual_seed(3)
    got = as_training_batch(_mapping_batch(scale), sample_latents=True).latents
    torch.manual_seed(3)
    want = OobleckVAE.sample(torch.zeros_like(scale), scale, torch.randn(scale.shape))
    assert torch.allclose(got, want, atol=1e-6)


def test_scale_for_std_inverts_posterior_std() -> None:
    for std in (1e-4, 1e-3, 0.5, 3.0):
        assert abs(float(posterior_std(torch.tensor(scale_for_std(std)))) - max(std, 1e-4)) < 1e-6
