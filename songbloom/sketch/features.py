"""MuQ feature extraction aligned to VAE latent frames, batched and chunked for whole songs."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torchaudio.functional as AF
from torch import nn

from songbloom.sketch.alignment import (
    MUQ_SAMPLE_RATE,
    MUQ_SAMPLES_PER_FRAME,
    align_to_vae_frames,
    num_vae_frames,
)
from songbloom.sketch.muq_backbone import muq_feature_dim, muq_layer_count

logger = logging.getLogger(__name__)

# MuQ's centred STFT reflect-pads by n_fft/2 = 1024 samples, which needs a longer input; shorter clips
# (< 2 frames) are zero-padded to this length and the result trimmed back to the VAE frame count.
_MIN_MUQ_SAMPLES = 2048


@dataclass(frozen=True)
class _Window:
    item: int  # index of the clip in the request
    start_frame: int  # first frame fed to MuQ (context included)
    end_frame: int  # one past the last frame fed to MuQ
    keep_start: int  # first frame whose features are kept
    keep_end: int


def to_mono(wav: torch.Tensor) -> torch.Tensor:
    """[T] -> [T]; [C, T] -> mean over channels. Sketch tokens describe the mix, as MuQ expects mono input."""
    if wav.dim() == 1:
        return wav
    if wav.dim() == 2:
        return wav.mean(dim=0)
    raise ValueError(f"expected a waveform [T] or [C, T], got shape {tuple(wav.shape)}")


class MuQFeatureExtractor:
    """Runs MuQ in eval mode and returns one feature vector per VAE latent frame (25 Hz).

    Long songs are cut into windows of ``chunk_seconds`` with ``context_seconds`` of extra audio on each
    side; only the centre of each window is kept. Window edges sit on 960-sample (24 kHz) frame boundaries,
    so every kept frame has the same global index it would have in one pass. A clip that fits in
    ``chunk_seconds + 2 * context_seconds`` runs in one pass, unchunked. Windows of equal length from
    different clips are batched together (``batch_size`` windows per forward).

    ``layer`` is the hidden state :meth:`extract` / :meth:`extract_many` return; :meth:`extract_many_layers`
    returns several (``layers``, default ``(layer,)``) from the same forward passes, as ``[F, L, D]``.
    """

    def __init__(self, muq: nn.Module, *, layer: int = -1, chunk_seconds: float = 30.0, context_seconds: float = 5.0,
                 batch_size: int = 8, device: str | torch.device | None = None,
                 layers: Sequence[int] | None = None):
        num_layers = muq_layer_count(muq)
        self.num_layers = num_layers
        if chunk_seconds <= 0 or context_seconds < 0 or batch_size <= 0:
            raise ValueError("chunk_seconds and batch_size must be positive and context_seconds >= 0")
        self.layer = self._check_layer(layer)
        # The layers extract_many_layers() returns by default (one MuQ forward serves all of them).
        self.layers = self.check_layers(layers) if layers is not None else (self.layer,)
        self.feature_dim = muq_feature_dim(muq)
        self.chunk_frames = max(1, round(chunk_seconds * 25))
        self.context_frames = round(context_seconds * 25)
        self.batch_size = batch_size
        self.device = torch.device(device) if device is not None else next(muq.parameters()).device
        self.muq = muq.to(self.device).eval()

    # ------------------------------------------------------------------ public API
    @torch.no_grad()
    def extract(self, wav: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Features for a batch of equal-length mono clips: ``[B, T]`` or ``[T]`` -> ``[B, F, D]`` (F = T*25//sr)."""
        if wav.dim() == 1:
            wav = wav.unsqueeze(0)
        if wav.dim() != 2:
            raise ValueError(f"expected mono audio [B, T] or [T], got shape {tuple(wav.shape)}")
        feats = self.extract_many(list(wav), sample_rate)
        return torch.stack(feats) if feats else torch.zeros(0, 0, self.feature_dim)

    @torch.no_grad()
    def extract_many(self, wavs: list[torch.Tensor], sample_rate: int) -> list[torch.Tensor]:
        """Features for clips of any lengths: list of ``[T_i]`` -> list of float32 ``[F_i, D]`` on the CPU."""
        return [f[:, 0] for f in self._extract(wavs, sample_rate, (self.layer,))]

    @torch.no_grad()
    def extract_many_layers(
        self, wavs: list[torch.Tensor], sample_rate: int, layers: Sequence[int] | None = None
    ) -> list[torch.Tensor]:
        """Several MuQ layers from one forward: list of ``[T_i]`` -> list of float32 ``[F_i, L, D]`` on the CPU.

        ``layers`` (default: the constructor's ``layers``) are hidden-state indices as for ``layer``; the result
        keeps their order. Each layer's slice equals what a single-layer extractor returns for that layer.
        """
        return self._extract(wavs, sample_rate, self.layers if layers is None else self.check_layers(layers))

    def check_layers(self, layers: Sequence[int]) -> tuple[int, ...]:
        """Layer indices made non-negative; refused when empty, repeated or out of range."""
        if isinstance(layers, int) or not len(layers):
            raise ValueError(f"layers must be a non-empty sequence of MuQ hidden-state indices, got {layers!r}")
        out = tuple(self._check_layer(int(layer)) for layer in layers)
        if len(set(out)) != len(out):
            raise ValueError(f"MuQ layers {list(layers)} name the same hidden state twice ({list(out)})")
        return out

    # ------------------------------------------------------------------ internals
    def _check_layer(self, layer: int) -> int:
        n = self.num_layers
        if not -n <= layer < n:
            raise ValueError(
                f"MuQ layer {layer} out of range: this MuQ returns {n} hidden states "
                f"(0 = encoder input, {n - 1} = last layer; negative counts from the end)"
            )
        return layer % n

    def _extract(self, wavs: list[torch.Tensor], sample_rate: int, layers: tuple[int, ...]) -> list[torch.Tensor]:
        """list of ``[T_i]`` -> list of float32 ``[F_i, L, D]`` for the hidden states ``layers``."""
        targets = []
        audio_24k = []
        for i, wav in enumerate(wavs):
            if wav.dim() != 1:
                raise ValueError(f"clip {i}: expected mono audio [T], got shape {tuple(wav.shape)}; downmix first")
            targets.append(num_vae_frames(wav.shape[-1], sample_rate))
            audio_24k.append(self._resample(wav, sample_rate))
        outputs: list[list[tuple[int, torch.Tensor]]] = [[] for _ in wavs]
        windows = [w for i, frames in enumerate(targets) for w in self._plan_windows(i, frames)]
        # Batch windows with the same input length; a different length would need padding, which would
        # change MuQ's output (no attention mask is used).
        by_length: dict[int, list[_Window]] = {}
        for w in windows:
            n = self._window_samples(w, audio_24k[w.item].shape[-1])
            by_length.setdefault(n, []).append(w)
        for n_samples, group in sorted(by_length.items()):
            for b in range(0, len(group), self.batch_size):
                batch = group[b : b + self.batch_size]
                x = torch.stack([self._window_audio(w, audio_24k[w.item], n_samples) for w in batch])
                hidden = self._forward(x, layers)
                for w, h in zip(batch, hidden):
                    lo = w.keep_start - w.start_frame
                    outputs[w.item].append((w.keep_start, h[lo : lo + (w.keep_end - w.keep_start)]))
        result = []
        for i, pieces in enumerate(outputs):
            if targets[i] == 0:
                result.append(torch.zeros(0, len(layers), self.feature_dim))
                continue
            pieces.sort(key=lambda p: p[0])
            feats = torch.cat([p[1] for p in pieces]).float().cpu()
            feats, padded = align_to_vae_frames(feats, targets[i], time_dim=0)
            if padded:  # cannot happen with the frame rule; kept as a loud guard
                raise RuntimeError(f"clip {i}: MuQ returned {targets[i] - padded} frames, expected {targets[i]}")
            result.append(feats)
        return result

    def _resample(self, wav: torch.Tensor, sample_rate: int) -> torch.Tensor:
        wav = wav.detach().float()
        if sample_rate != MUQ_SAMPLE_RATE:
            wav = AF.resample(wav, int(sample_rate), MUQ_SAMPLE_RATE)
        return wav

    def _plan_windows(self, item: int, frames: int) -> list[_Window]:
        if frames == 0:
            return []
        c, k = self.context_frames, self.chunk_frames
        if frames <= k + 2 * c:
            return [_Window(item, 0, frames + 1, 0, frames)]  # +1: feed the partial tail frame as one pass would
        windows = []
        for start in range(0, frames, k):
            end = min(start + k, frames)
            windows.append(_Window(item, max(0, start - c), min(frames + 1, end + c), start, end))
        return windows

    @staticmethod
    def _window_samples(w: _Window, total: int) -> int:
        start = w.start_frame * MUQ_SAMPLES_PER_FRAME
        end = min(total, w.end_frame * MUQ_SAMPLES_PER_FRAME)
        return max(end - start, _MIN_MUQ_SAMPLES)

    @staticmethod
    def _window_audio(w: _Window, audio: torch.Tensor, n_samples: int) -> torch.Tensor:
        start = w.start_frame * MUQ_SAMPLES_PER_FRAME
        piece = audio[start : start + n_samples]
        if piece.shape[-1] < n_samples:  # only for clips shorter than _MIN_MUQ_SAMPLES
            piece = torch.nn.functional.pad(piece, (0, n_samples - piece.shape[-1]))
        return piece

    def _forward(self, x: torch.Tensor, layers: tuple[int, ...]) -> torch.Tensor:
        """[B, T] audio -> [B, frames, L, D] hidden states of ``layers``."""
        out = self.muq(x.to(self.device), output_hidden_states=True)
        return torch.stack([out.hidden_states[i] for i in layers], dim=2)
