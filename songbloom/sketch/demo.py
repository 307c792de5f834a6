"""A tiny codebook from synthetic audio and a tiny random MuQ, for the CPU demo and tests (no downloads).

Four timbres that any spectral front end tells apart (buzzy harmonic tone, white noise, high sine,
decaying click train), with random pitch and level jitter per clip.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import soundfile as sf
import torch

logger = logging.getLogger(__name__)

NUM_TIMBRES = 4


def timbre_clip(kind: int, seconds: float, sr: int, generator: torch.Generator) -> torch.Tensor:
    """Mono ``[T]`` clip of timbre ``kind`` (0 harmonic tone, 1 noise, 2 high sine, 3 click train)."""
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
        raise ValueError(f"timbre kind must be in 0..{NUM_TIMBRES - 1}, got {kind}")
    return level * x / x.abs().max()


def make_timbre_set(clips_per_timbre: int, seconds: float, sr: int, seed: int) -> list[tuple[int, torch.Tensor]]:
    """``[(timbre, wav)]`` with ``clips_per_timbre`` clips of each timbre, deterministic from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return [(k, timbre_clip(k, seconds, sr, g)) for k in range(NUM_TIMBRES) for _ in range(clips_per_timbre)]


def write_clips(folder: str | os.PathLike, clips: list[tuple[int, torch.Tensor]], sr: int,
                prefix: str = "clip") -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (kind, wav) in enumerate(clips):
        path = folder / f"{prefix}{i:03d}_t{kind}.wav"
        sf.write(str(path), wav.numpy(), sr, subtype="FLOAT")
        paths.append(path)
    return paths


def build_demo_codebook(out_dir: str | os.PathLike, *, num_codes: int = 64, seed: int = 0,
                        clips_per_timbre: int = 4, seconds: float = 4.0, epochs: int = 2) -> Path:
    """Write synthetic audio, a tiny random MuQ and a ``num_codes`` codebook under ``out_dir``; return its path.

    ``num_codes`` must equal the demo model's ``num_pitch`` (64 for the ``tiny`` preset). About 15 s on 2 CPU
    cores after imports.
    """
    from songbloom.sketch.muq_backbone import build_tiny_muq
    from songbloom.sketch.sources import list_directory
    from songbloom.sketch.trainer import CodebookTrainer, CodebookTrainingConfig

    out = Path(out_dir)
    sr = 24000
    write_clips(out / "audio" / "train", make_timbre_set(clips_per_timbre, seconds, sr, seed), sr)
    write_clips(out / "audio" / "heldout", make_timbre_set(1, seconds, sr, seed + 1), sr, prefix="held")
    muq_dir = out / "tiny_muq"
    muq = build_tiny_muq(seed, muq_dir)
    cfg = CodebookTrainingConfig(num_codes=num_codes, epochs=epochs, batch_frames=256, shuffle_buffer_frames=1024,
                                 reseed_every=5, seed=seed)
    trainer = CodebookTrainer(cfg, muq, muq_model_id=str(muq_dir.resolve()), work_dir=out / "work", overwrite=True,
                              progress=False)
    result = trainer.run(list_directory(out / "audio" / "train"), out / "sketch_codebook.safetensors",
                         heldout_items=list_directory(out / "audio" / "heldout"))
    logger.info("demo codebook %s: %d codes, perplexity %.1f on held-out audio", result.codebook.codebook_hash,
                num_codes, result.metrics.perplexity)
    return result.artifact_path
