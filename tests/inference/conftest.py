"""Fixtures of the inference tests: the tiny_a golden model, loaded from ../shared."""

from __future__ import annotations

import pytest
import torch
import yaml

from songbloom.config import ModelConfig
from songbloom.models.songbloom import SongBloomModel


@pytest.fixture(scope="session")
def tiny_a_model(tiny_a_dir) -> SongBloomModel:
    vocab = yaml.safe_load((tiny_a_dir / "vocab_g2p.yaml").read_text(encoding="utf-8"))
    cfg = ModelConfig(
        block_size=16,
        latent_dim=8,
        dim=96,
        num_heads=2,
        lm_layers=2,
        diff_layers=2,
        num_pitch=32,
        lyric_vocab=vocab,
        lyric_max_len=64,
        prompt_max_len=25,
    )
    model = SongBloomModel(cfg).eval()
    sd = torch.load(tiny_a_dir / "model.pt", weights_only=True)
    model.load_state_dict({k[len("model.") :]: v for k, v in sd.items() if k.startswith("model.")}, strict=True)
    return model


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread):
    """Tiny models in this directory run on one torch thread (see tests/conftest.py)."""
