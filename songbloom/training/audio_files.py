"""Songs on disk: a 32-bit float WAV beside its log-mel spectrogram PNG, and copying such a pair."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch


def mel_image(audio: torch.Tensor, sample_rate: int, path: Path, title: str = "") -> Path:
    """Save a log-mel spectrogram of ``audio`` (C, T) as a PNG (matplotlib without pyplot's global state)."""
    import torchaudio.transforms as T
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    mono = audio.float().mean(dim=0)
    hop = max(1, sample_rate // 100)
    mel = T.MelSpectrogram(sample_rate=sample_rate, n_fft=4 * hop, hop_length=hop, n_mels=80)(mono)
    db = T.AmplitudeToDB(top_db=80.0)(mel + 1e-10)
    fig = Figure(figsize=(8, 3), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    seconds = mono.shape[-1] / sample_rate
    ax.imshow(db.numpy(), origin="lower", aspect="auto", extent=(0.0, seconds, 0, db.shape[0]), cmap="magma")
    ax.set_xlabel("seconds")
    ax.set_ylabel("mel bin")
    if title:
        ax.set_title(title[:90], fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(path))
    return path


def write_song(audio: torch.Tensor, sample_rate: int, wav_path: Path, *, title: str, spectrogram: bool) -> None:
    import soundfile as sf

    wav_path.parent.mkdir(parents=True, exist_ok=True)
    # 32-bit float: a young model's song may exceed [-1, 1], and 16-bit PCM would clip (and hide) that.
    sf.write(str(wav_path), audio.float().T.numpy(), sample_rate, subtype="FLOAT")
    if spectrogram:
        mel_image(audio, sample_rate, wav_path.with_suffix(".png"), title)


def copy_song(src: Path, dst: Path) -> None:
    """Copy a song's WAV and, when there is one, its spectrogram PNG."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.resolve() != dst.resolve():
        shutil.copyfile(src, dst)
        if src.with_suffix(".png").is_file():
            shutil.copyfile(src.with_suffix(".png"), dst.with_suffix(".png"))
