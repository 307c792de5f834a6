"""Shared tiny inputs for the evaluation tests: synthetic audio, a tiny model and held-out batches."""

from __future__ import annotations

import math

import pytest
import torch

from songbloom.config import SongBloomConfig
from songbloom.models.songbloom import SongBloomModel


def tone(seconds: float, freq: float, sr: int = 24000, *, noise: float = 0.0, seed: int = 0) -> torch.Tensor:
    """A sine (plus optional seeded noise): deterministic test audio with a controllable spectrum."""
    t = torch.arange(int(seconds * sr)) / sr
    wav = 0.5 * torch.sin(2 * math.pi * freq * t)
    if noise:
        wav = wav + noise * torch.randn(wav.shape, generator=torch.Generator().manual_seed(seed))
    return wav


@pytest.fixture(scope="session")
def tiny_model_cfg():
    return SongBloomConfig.from_name("tiny").model


@pytest.fixture()
def tiny_model(tiny_model_cfg):
    torch.manual_seed(0)
    return SongBloomModel(tiny_model_cfg)


def make_batch(cfg, *, batch: int = 2, frames: int = 16, seed: int = 0) -> dict:
    """A batch in the datamodule's collate layout (x_sketch EOS-padded, x_latent zero past x_len)."""
    g = torch.Generator().manual_seed(seed)
    lens = torch.tensor([frames - 4 * (i % 2) for i in range(batch)])
    sketch = torch.full((batch, frames), cfg.eos_id, dtype=torch.long)
    latent = torch.zeros(batch, cfg.latent_dim, frames)
    for i, n in enumerate(lens.tolist()):
        sketch[i, :n] = torch.randint(0, cfg.num_pitch, (n,), generator=g)
        latent[i, :, :n] = torch.randn(cfg.latent_dim, n, generator=g)
    prompt = torch.randn(batch, cfg.latent_dim, cfg.prompt_max_len, generator=g)
    return {
        "x_sketch": sketch,
        "x_latent": latent,
        "x_len": lens,
        "prompt_latent": prompt,
        "prompt_len": torch.full((batch,), cfg.prompt_max_len, dtype=torch.long),
        "lyric_ids": [torch.randint(1, 50, (7,), generator=g).tolist() for _ in range(batch)],
    }


@pytest.fixture(scope="session")
def tiny_muq():
    from songbloom.sketch import build_tiny_muq

    return build_tiny_muq(seed=0)
