"""Metrics on audio: FAD, audio/audio similarity on embedder features, and MuLan text/audio similarity."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from songbloom.eval.embedders import AudioEmbedder, build_embedder
from songbloom.eval.frechet import DEFAULT_EPS, GaussianStats, frechet_distance_from_stats
from songbloom.eval.mulan import MuLanScorer
from songbloom.eval.registry import register_metric

logger = logging.getLogger(__name__)


@register_metric("fad")
class FADMetric:
    """Frechet Audio Distance between generated and reference audio on frame embeddings.

    Every frame embedding of every clip is one sample of each Gaussian. Reference statistics can be given
    precomputed (``reference_stats``: a :class:`GaussianStats` or a ``.npz`` written by ``GaussianStats.save``)
    so a fixed reference set is embedded once.
    """

    name = "fad"

    def __init__(self, embedder: str | AudioEmbedder | None = "muq", *, eps: float = DEFAULT_EPS,
                 reference_stats: GaussianStats | str | Path | None = None, **embedder_kwargs):
        self.embedder = build_embedder(embedder, **embedder_kwargs)
        self.eps = eps
        if isinstance(reference_stats, (str, Path)):
            reference_stats = GaussianStats.load(reference_stats)
        self._fixed_reference = reference_stats
        self.reset()

    def reset(self) -> None:
        self.generated = GaussianStats.empty(self.embedder.dim)
        self.reference = self._fixed_reference or GaussianStats.empty(self.embedder.dim)

    def update(self, generated: Sequence[torch.Tensor] = (), reference: Sequence[torch.Tensor] = (), *,
               sample_rate: int) -> None:
        for feats in self.embedder.embed(list(generated), sample_rate) if generated else []:
            if feats.shape[0]:
                self.generated.add(feats)
        if reference and self._fixed_reference is not None:
            raise ValueError("this FAD metric has fixed reference statistics; pass only generated audio")
        for feats in self.embedder.embed(list(reference), sample_rate) if reference else []:
            if feats.shape[0]:
                self.reference.add(feats)

    def update_embeddings(self, generated: np.ndarray | torch.Tensor | None = None,
                          reference: np.ndarray | torch.Tensor | None = None) -> None:
        """Add precomputed ``[N, D]`` embeddings (for embedders run elsewhere)."""
        if generated is not None:
            self.generated.add(generated)
        if reference is not None:
            self.reference.add(reference)

    def compute(self) -> dict[str, float]:
        value = frechet_distance_from_stats(self.generated, self.reference, eps=self.eps)
        return {"fad": value, "fad_generated_frames": float(self.generated.count),
                "fad_reference_frames": float(self.reference.count)}


def _pooled(feats: Sequence[torch.Tensor]) -> torch.Tensor:
    rows = []
    for i, f in enumerate(feats):
        if f.shape[0] == 0:
            raise ValueError(f"clip {i} is too short to embed (0 frames); it needs at least 40 ms of audio")
        rows.append(f.float().mean(dim=0))
    return torch.stack(rows)


@register_metric("audio_similarity")
class AudioSimilarityMetric:
    """Cosine similarity of time-pooled embeddings of paired clips (generated i vs reference i).

    With MuQ features this is the audio/audio similarity that needs no text tower.
    """

    name = "audio_similarity"

    def __init__(self, embedder: str | AudioEmbedder | None = "muq", **embedder_kwargs):
        self.embedder = build_embedder(embedder, **embedder_kwargs)
        self.reset()

    def reset(self) -> None:
        self.scores: list[float] = []

    def update(self, generated: Sequence[torch.Tensor], reference: Sequence[torch.Tensor], *,
               sample_rate: int) -> None:
        if len(generated) != len(reference):
            raise ValueError(f"audio similarity pairs clips: got {len(generated)} generated and "
                             f"{len(reference)} reference clips")
        if not generated:
            return
        self.update_embeddings(self.embedder.embed(list(generated), sample_rate),
                               self.embedder.embed(list(reference), sample_rate))

    def update_embeddings(self, generated: Sequence[torch.Tensor], reference: Sequence[torch.Tensor]) -> None:
        """Paired precomputed frame embeddings (``[F_i, D]`` each), when the caller embeds clips once."""
        if len(generated) != len(reference):
            raise ValueError(f"audio similarity pairs clips: got {len(generated)} and {len(reference)} embeddings")
        if generated:
            g, r = _pooled(generated), _pooled(reference)
            self.scores.extend(F.cosine_similarity(g, r, dim=-1).tolist())

    def compute(self) -> dict[str, float]:
        return _summary("audio_similarity", self.scores)


@register_metric("mulan_text_audio")
class MuLanTextAudioMetric:
    """MuLan text/audio similarity of each generated clip with its text description (the paper's MCC)."""

    name = "mulan_text_audio"

    def __init__(self, mulan=None, *, device: str | torch.device = "cpu"):
        self.scorer = mulan if isinstance(mulan, MuLanScorer) else MuLanScorer(mulan, device=device)
        self.reset()

    def reset(self) -> None:
        self.scores: list[float] = []

    def update(self, generated: Sequence[torch.Tensor], texts: Sequence[str], *, sample_rate: int) -> None:
        if len(generated) != len(texts):
            raise ValueError(f"got {len(generated)} clips but {len(texts)} texts; give one description per clip")
        if not generated:
            return
        a = self.scorer.audio_latents(generated, sample_rate)
        t = self.scorer.text_latents(texts)
        self.scores.extend((a * t).sum(dim=-1).tolist())

    def compute(self) -> dict[str, float]:
        return _summary("mulan_text_audio", self.scores)


@register_metric("mulan_audio_audio")
class MuLanAudioAudioMetric:
    """MuLan audio/audio similarity of generated clip i with reference clip i (prompt-conditioned MCC)."""

    name = "mulan_audio_audio"

    def __init__(self, mulan=None, *, device: str | torch.device = "cpu"):
        self.scorer = mulan if isinstance(mulan, MuLanScorer) else MuLanScorer(mulan, device=device)
        self.reset()

    def reset(self) -> None:
        self.scores: list[float] = []

    def update(self, generated: Sequence[torch.Tensor], reference: Sequence[torch.Tensor], *,
               sample_rate: int) -> None:
        if len(generated) != len(reference):
            raise ValueError(f"got {len(generated)} generated and {len(reference)} reference clips; they are paired")
        if not generated:
            return
        a = self.scorer.audio_latents(generated, sample_rate)
        b = self.scorer.audio_latents(reference, sample_rate)
        self.scores.extend((a * b).sum(dim=-1).tolist())

    def compute(self) -> dict[str, float]:
        return _summary("mulan_audio_audio", self.scores)


def _summary(name: str, scores: Sequence[float]) -> dict[str, float]:
    if not scores:
        raise ValueError(f"{name}: no clips were scored; call update() with at least one clip first")
    arr = np.asarray(scores, dtype=np.float64)
    return {name: float(arr.mean()), f"{name}_std": float(arr.std()), f"{name}_count": float(arr.size)}
