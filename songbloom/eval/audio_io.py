"""Reading folders of audio for evaluation: one clip per file, matched across folders by file stem."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

logger = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


@dataclass
class AudioFolder:
    """Clips keyed by file stem, all resampled-free (each keeps its own rate), plus the files that failed."""

    root: Path
    clips: dict[str, tuple[torch.Tensor, int]] = field(default_factory=dict)  # stem -> ([C, T], sr)
    skipped: dict[str, str] = field(default_factory=dict)  # file -> reason

    @property
    def names(self) -> list[str]:
        return sorted(self.clips)


def read_audio(path: str | Path) -> tuple[torch.Tensor, int]:
    """``([C, T] float32, sample_rate)`` via soundfile (torchaudio cannot read files in this stack)."""
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return torch.from_numpy(np.ascontiguousarray(data.T)), int(sr)


def write_audio(path: str | Path, wav: torch.Tensor, sample_rate: int) -> None:
    wav = wav.detach().float().cpu()
    if wav.dim() == 1:
        wav = wav[None]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wav.T.numpy(), int(sample_rate))


def load_audio_folder(root: str | Path, *, min_seconds: float = 0.1) -> AudioFolder:
    """Every audio file directly under ``root``; unreadable or too-short files are skipped and listed."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"audio folder {root} does not exist; give NAME=FOLDER of generated songs")
    folder = AudioFolder(root)
    for path in sorted(p for p in root.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES):
        if path.stem in folder.clips:
            folder.skipped[str(path)] = f"duplicate stem {path.stem!r} (another extension was read first)"
            continue
        try:
            wav, sr = read_audio(path)
        except Exception as e:  # a damaged file must not stop the batch: count and report it
            folder.skipped[str(path)] = f"unreadable: {e}"
            continue
        if wav.shape[-1] < min_seconds * sr:
            folder.skipped[str(path)] = f"shorter than {min_seconds} s ({wav.shape[-1]} samples)"
            continue
        if not torch.isfinite(wav).all():
            folder.skipped[str(path)] = "contains NaN or inf samples"
            continue
        folder.clips[path.stem] = (wav, sr)
    if folder.skipped:
        reasons = "; ".join(f"{k}: {v}" for k, v in folder.skipped.items())
        total = len(folder.skipped) + len(folder.clips)
        logger.warning("%s: skipped %d of %d files: %s", root, len(folder.skipped), total, reasons)
    if not folder.clips:
        raise ValueError(
            f"no readable audio in {root} (looked for {', '.join(AUDIO_SUFFIXES)}); convert the files to WAV or FLAC"
        )
    return folder
