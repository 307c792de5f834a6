"""Synthetic audio with four clearly different timbres, for codebook tests (no data download)."""

from __future__ import annotations

import math
from pathlib import Path

import soundfile as sf
import torch

NUM_TIMBRES = 4


def timbre_clip(kind: int, seconds: float, sr: int, generator: torch.Generator) -> torch.Tensor:
    """0: buzzy harmonic tone, 1: white noise, 2: high sine, 3: decaying click train; random pitch/level jitter."""
    n = int(seconds * sr)
    t = torch.arange(n) / sr
    jitter = 1.0 + 0.05 * float(torch.rand(1, generator=generator))
    level = 0.3 + 0.4 * float(torch.rand(1, generator=generator))
    if kind == 0:
        x = sum(torch.sin(2 * math.pi * 220 * jitter * k * t) / k for k in range(1, 20))
    elif kind == 1:
        x = torch.randn(n, generator=generator)
    elif kind == 2:
        x = torch.sin(2 * math.pi * 1760 * jitter * t)
    elif kind == 3:
        x = torch.zeros(n)
        x[:: int(sr / (8 * jitter))] = 1.0
        decay = torch.exp(-torch.arange(200.0) / 30).flip(0)
        x = torch.nn.functional.conv1d(x[None, None], decay[None, None], padding=199)[0, 0, :n]
    else:
        raise ValueError(kind)
    return level * x / x.abs().max()


def make_timbre_set(clips_per_timbre: int, seconds: float, sr: int, seed: int) -> list[tuple[int, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(k, timbre_clip(k, seconds, sr, g)) for k in range(NUM_TIMBRES) for _ in range(clips_per_timbre)]


def write_clips(folder: Path, clips: list[tuple[int, torch.Tensor]], sr: int, prefix: str = "clip") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (kind, wav) in enumerate(clips):
        path = folder / f"{prefix}{i:03d}_t{kind}.wav"
        sf.write(str(path), wav.numpy(), sr, subtype="FLOAT")
        paths.append(path)
    return paths
