"""Audio reading for preprocessing: decode with soundfile, check, resample, and cut the style prompt.

Every failure raises :class:`AudioError` naming the file and what to do, so a batch job can skip and report
it. The prompt is prepared exactly as the official inference does it: 48 kHz, channels averaged to mono,
truncated (never padded) to ``prompt_seconds``; the VAE then repeats mono to its two channels.

Files with more than two channels are downmixed to stereo by :func:`downmix_to_stereo` (rule stated there and in
docs/data.md); mono is repeated to both channels.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF


class AudioError(ValueError):
    """An audio file that cannot be used as training data; ``kind`` classifies the reason for reports."""

    def __init__(self, message: str, kind: str = "bad_audio"):
        super().__init__(message)
        self.kind = kind


@dataclass
class LoadedAudio:
    """Decoded audio at the target rate: ``wav`` is float32 [channels, T]."""

    wav: torch.Tensor
    sample_rate: int
    orig_sample_rate: int
    orig_channels: int
    path: str

    @property
    def seconds(self) -> float:
        return self.wav.shape[-1] / self.sample_rate


def load_audio(
    path: str | Path,
    sample_rate: int = 48000,
    channels: int = 2,
    min_sample_rate: int = 16000,
    min_seconds: float = 0.0,
) -> LoadedAudio:
    """Decode, check and resample a file to ``sample_rate`` with ``channels`` channels (mono is repeated)."""
    path = str(path)
    if not Path(path).is_file():
        raise AudioError(
            f"{path}: file not found (check audio_path / prompt_wav relative to the manifest)", "missing_file"
        )
    try:
        data, sr = sf.read(path, dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError/RuntimeError/TypeError depending on the damage
        raise AudioError(f"{path}: cannot decode audio ({e}); re-export it as WAV or FLAC", "decode_error") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: empty audio (0 samples)", "empty_audio")
    n_ch = data.shape[1]
    if n_ch == 0:
        raise AudioError(f"{path}: no audio channels", "channels")
    if sr < min_sample_rate:
        raise AudioError(
            f"{path}: sample rate {sr} Hz is below the minimum {min_sample_rate} Hz for a 48 kHz model", "sample_rate"
        )
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise AudioError(f"{path}: {bad} NaN/Inf samples; the file is damaged", "nan_audio")
    wav = torch.from_numpy(np.ascontiguousarray(downmix_to_stereo(data).T))
    if sr != sample_rate:
        wav = AF.resample(wav, sr, sample_rate)
    if wav.shape[0] != channels:
        wav = wav.mean(0, keepdim=True).expand(channels, -1).contiguous() if channels >= 1 else wav
    if wav.shape[-1] / sample_rate < min_seconds:
        raise AudioError(
            f"{path}: only {wav.shape[-1] / sample_rate:.2f} s long; need at least {min_seconds:.2f} s", "too_short"
        )
    return LoadedAudio(wav, sample_rate, int(sr), int(n_ch), path)


SURROUND_GAIN = 1.0 / math.sqrt(2.0)  # -3 dB: each channel after the first two goes into both sides at this gain


def downmix_to_stereo(data: np.ndarray) -> np.ndarray:
    """[T, C] samples -> [T, min(C, 2)]: mono and stereo unchanged; more channels are downmixed to stereo.

    The rule: channels 1 and 2 are front left and right (the usual WAV/FLAC order); every further channel
    (centre, LFE, surrounds, ...) is added to both sides at -3 dB (x 0.7071), and each side is divided by the
    sum of its gains, ``1 + 0.7071 * (C - 2)``, so the mix never exceeds the loudest input (no clipping).
    """
    n_ch = data.shape[1]
    if n_ch <= 2:
        return data
    rest = data[:, 2:].sum(axis=1, keepdims=True) * SURROUND_GAIN
    norm = 1.0 + SURROUND_GAIN * (n_ch - 2)
    return ((data[:, :2] + rest) / norm).astype(data.dtype, copy=False)


def peak_dbfs(wav: torch.Tensor) -> float:
    peak = float(wav.abs().max()) if wav.numel() else 0.0
    return 20.0 * math.log10(peak) if peak > 0 else -math.inf


def is_silent(wav: torch.Tensor, threshold_db: float = -60.0) -> bool:
    """True when the loudest sample is under ``threshold_db`` dBFS (digital silence or near it)."""
    return peak_dbfs(wav) < threshold_db


def prompt_from_wav(wav: torch.Tensor, sample_rate: int, prompt_seconds: float) -> torch.Tensor:
    """Official prompt processing of audio already at the model rate: mono mean, truncate. Returns [1, 1, T]."""
    mono = wav.float().mean(0, keepdim=True) if wav.dim() == 2 else wav.float().reshape(1, -1)
    return mono[:, : int(round(prompt_seconds * sample_rate))].unsqueeze(0)


def flac_bytes(wav: torch.Tensor, sample_rate: int) -> bytes:
    """Encode [C, T] float audio as 24-bit FLAC (lossless for training-time re-encoding)."""
    buf = io.BytesIO()
    sf.write(buf, wav.detach().cpu().numpy().T.clip(-1.0, 1.0), sample_rate, format="FLAC", subtype="PCM_24")
    return buf.getvalue()


def read_flac_bytes(data: bytes) -> tuple[torch.Tensor, int]:
    arr, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return torch.from_numpy(np.ascontiguousarray(arr.T)), int(sr)
