"""A tiny world for the ``recover`` tests: a random tiny SongBloom in the release layout with the frame-linear VAE,
a tiny random MuQ saved to a folder, a requests JSONL with style prompts, and held-out songs of the user's."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from songbloom.checkpoints.formats.release import export_release
from songbloom.config import SongBloomConfig
from songbloom.models.frame_vae import FrameLinearVAE
from songbloom.models.songbloom import SongBloomModel
from songbloom.sketch import build_tiny_muq

BASE_NAME = "tiny_base"
SR = 48000
REQUESTS = [
    {"idx": "r0", "lyrics": "[verse] こんにちは せかい", "prompt_wav": "p0.wav"},
    {"idx": "r1", "lyrics": "[chorus] うたを うたおう", "prompt_wav": "p1.wav"},
    {"idx": "r2", "lyrics": "[verse] あめが ふる , [chorus] ゆきが ふる", "prompt_wav": "p0.wav"},
]
HELDOUT = [
    {"idx": "h0", "audio": "h0.wav", "lyrics": "[verse] さくら さくら"},
    {"idx": "h1", "audio": "h1.wav", "lyrics": "[chorus] かえるの うた", "prompt_wav": "p1.wav"},
    {"idx": "h2", "audio_path": "h2.flac", "lyrics": "[verse] ゆきが ふる よ"},
]
# Flags that keep a tiny CPU run short: 1.2 s songs (28 frames), 2 DiT steps, a short probe fit.
FAST = ["--device", "cpu", "--max-duration", "1.2", "--steps", "2", "--no-progress",
        "--probe-epochs", "5", "--language", "ja", "--feature-dtype", "float32", "--fresh-epochs", "2"]


@dataclass
class World:
    root: Path
    base: Path
    muq: Path
    requests: Path
    heldout: Path

    def args(self, work: str = "work", *extra: str) -> list[str]:
        """``recover`` flags for this world (before the stage-specific ones)."""
        return ["recover", "--base", str(self.base), "--muq", str(self.muq), "--requests", str(self.requests),
                "--work-dir", str(self.root / work), *FAST, *extra]


def _tone(path: Path, seconds: float, hz: float, channels: int = 1, sr: int = SR) -> None:
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * math.pi * hz * t) * (1 + 0.3 * np.sin(2 * math.pi * 1.5 * t))
    sf.write(path, np.stack([x] * channels, 1).astype(np.float32), sr)


def write_base(folder: Path, seed: int = 7) -> Path:
    """The tiny preset with random weights and a sinusoidal frame VAE, exported in the release layout."""
    cfg = SongBloomConfig.from_name("tiny")
    torch.manual_seed(seed)
    model = SongBloomModel(cfg.model).eval()
    with torch.no_grad():
        model.skeleton_classifier[-1].bias[cfg.model.eos_id] = -6.0  # songs (almost surely) run to the length cap
    vae = FrameLinearVAE.sinusoidal(latent_dim=8, sample_rate=SR, hop=1920, seed=5)
    export_release(model, cfg, vae, folder, name=BASE_NAME)
    return folder


def build_world(root: Path) -> World:
    root.mkdir(parents=True, exist_ok=True)
    base = write_base(root / "base")
    muq = root / "muq"
    build_tiny_muq(seed=0, out_dir=muq)
    data = root / "data"
    data.mkdir()
    _tone(data / "p0.wav", 1.2, 220.0, channels=2, sr=44100)
    _tone(data / "p1.wav", 1.0, 330.0)
    for i, hz in enumerate((196.0, 262.0)):
        _tone(data / f"h{i}.wav", 2.0, hz, channels=2)
    _tone(data / "h2.flac", 1.8, 294.0)
    requests = data / "requests.jsonl"
    requests.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in REQUESTS), encoding="utf-8")
    heldout = data / "heldout.jsonl"
    heldout.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in HELDOUT), encoding="utf-8")
    return World(root, base, muq, requests, heldout)
