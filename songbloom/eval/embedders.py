"""Audio embedders for FAD and audio/audio similarity: frame-level vectors from a waveform.

An embedder maps a list of clips (``[T]`` or ``[C, T]``, any lengths) at one sample rate to a list of
float32 ``[F_i, D]`` frame embeddings. MuQ features (the paper's choice of representation, and what the
sketch tokenizer already runs) are the default; log-mel statistics need no model and serve tests and quick
checks. Others register with :func:`register_embedder`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
import torchaudio.functional as AF
from torch import nn

logger = logging.getLogger(__name__)


@runtime_checkable
class AudioEmbedder(Protocol):
    name: str
    dim: int

    def embed(self, wavs: Sequence[torch.Tensor], sample_rate: int) -> list[torch.Tensor]: ...


def to_mono(wav: torch.Tensor) -> torch.Tensor:
    """``[T]`` stays; ``[C, T]`` is averaged over channels (every embedder here describes the mix)."""
    wav = torch.as_tensor(wav)
    if wav.dim() == 1:
        return wav.float()
    if wav.dim() == 2:
        return wav.float().mean(dim=0)
    raise ValueError(f"expected a waveform [T] or [C, T], got shape {tuple(wav.shape)}")


class MelStatsEmbedder:
    """Log-mel frames (40 ms hop at 16 kHz) with the mean and std of a short context window appended.

    No weights, deterministic and fast: useful as a sanity embedder and in tests, not a perceptual metric.
    """

    name = "mel"

    def __init__(self, n_mels: int = 32, sample_rate: int = 16000, context_frames: int = 5):
        import torchaudio

        self.sample_rate = sample_rate
        self.context_frames = context_frames
        self.n_mels = n_mels
        self.dim = 2 * n_mels
        self._mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=1024, hop_length=sample_rate // 25, n_mels=n_mels, power=2.0
        )

    @torch.no_grad()
    def embed(self, wavs: Sequence[torch.Tensor], sample_rate: int) -> list[torch.Tensor]:
        out = []
        for wav in wavs:
            x = to_mono(wav)
            if sample_rate != self.sample_rate:
                x = AF.resample(x, int(sample_rate), self.sample_rate)
            logmel = torch.log(self._mel(x) + 1e-6).T  # (F, n_mels)
            k = self.context_frames
            padded = torch.nn.functional.pad(logmel.T[None], (k // 2, k - 1 - k // 2), mode="replicate")[0]
            windows = padded.unfold(-1, k, 1)  # (n_mels, F, k)
            std = windows.std(dim=-1, unbiased=False).T
            out.append(torch.cat([logmel, std], dim=-1).float())
        return out


class MuQEmbedder:
    """MuQ hidden states at 25 Hz (one vector per VAE frame) via :class:`songbloom.sketch.MuQFeatureExtractor`."""

    name = "muq"

    def __init__(self, muq: nn.Module | str | None = None, *, layer: int = -1, batch_size: int = 8,
                 device: str | torch.device | None = None):
        from songbloom.sketch import DEFAULT_MUQ_MODEL_ID, MuQFeatureExtractor, load_muq

        if muq is None or isinstance(muq, str):
            muq = load_muq(muq or DEFAULT_MUQ_MODEL_ID, device=device or "cpu")
        self.extractor = MuQFeatureExtractor(muq, layer=layer, batch_size=batch_size, device=device)
        self.dim = self.extractor.feature_dim

    def embed(self, wavs: Sequence[torch.Tensor], sample_rate: int) -> list[torch.Tensor]:
        return self.extractor.extract_many([to_mono(w) for w in wavs], sample_rate)


_EMBEDDERS: dict[str, Callable[..., AudioEmbedder]] = {"mel": MelStatsEmbedder, "muq": MuQEmbedder}


def register_embedder(name: str, factory: Callable[..., AudioEmbedder]) -> None:
    _EMBEDDERS[name] = factory


def build_embedder(spec: str | AudioEmbedder | None = "muq", **kwargs: Any) -> AudioEmbedder:
    """An embedder instance from a registered name (``"muq"`` default, ``"mel"``) or one given as is."""
    if spec is None:
        spec = "muq"
    if not isinstance(spec, str):
        return spec
    try:
        factory = _EMBEDDERS[spec]
    except KeyError:
        raise KeyError(f"unknown embedder {spec!r}; registered: {', '.join(sorted(_EMBEDDERS))}") from None
    return factory(**kwargs)
