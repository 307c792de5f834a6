"""Audio (or MuQ features) to sketch token ids with a trained codebook artifact."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from songbloom.sketch.artifact import SketchCodebook, load_codebook, sketch_codebook_record
from songbloom.sketch.features import MuQFeatureExtractor
from songbloom.sketch.metrics import CodebookMetrics, MetricsAccumulator
from songbloom.sketch.muq_backbone import load_muq, muq_fingerprint

logger = logging.getLogger(__name__)


class SketchTokenizer:
    """MuQ + codebook: ``tokenize(wav, sr) -> LongTensor[B, F]`` with F = VAE latent frames (T * 25 // sr).

    The MuQ passed in (or loaded from the artifact's ``muq_model_id``) must be the one the codebook was
    trained on: its fingerprint is checked so that tokens never silently come from other features. A MuQ
    passed in is moved to ``device`` and put in eval mode.
    """

    def __init__(self, codebook: SketchCodebook, muq: nn.Module | None = None, *,
                 device: str | torch.device = "cpu", chunk_seconds: float = 30.0, context_seconds: float = 5.0,
                 batch_size: int = 8, check_muq: bool = True):
        self.codebook = codebook
        self.device = torch.device(device)
        self._scorer = codebook.to(self.device)  # the tensors on the tokenizer's device, moved once
        self._muq = muq
        self._extractor: MuQFeatureExtractor | None = None
        self._extractor_kwargs = dict(chunk_seconds=chunk_seconds, context_seconds=context_seconds,
                                      batch_size=batch_size)
        self._check_muq = check_muq
        if muq is not None:
            self._build_extractor(muq)

    @classmethod
    def from_artifact(cls, path: str | os.PathLike, muq: nn.Module | None = None, **kwargs: Any) -> SketchTokenizer:
        """Load a codebook artifact. Without ``muq``, MuQ is loaded lazily from the artifact's model id on first use."""
        return cls(load_codebook(Path(path)), muq=muq, **kwargs)

    # ------------------------------------------------------------------ identity
    @property
    def num_codes(self) -> int:
        return self.codebook.num_codes

    @property
    def codebook_hash(self) -> str:
        return self.codebook.codebook_hash

    @property
    def metadata(self) -> dict[str, Any]:
        return self.codebook.metadata

    @property
    def cache_record(self) -> dict[str, Any]:
        """What a token cache or shard must store next to the ids (see ``sketch_codebook_record``)."""
        return sketch_codebook_record(self.metadata)

    @property
    def extractor(self) -> MuQFeatureExtractor:
        if self._extractor is None:
            model_id = self.metadata["muq_model_id"]
            logger.info("loading MuQ %r named by codebook %s", model_id, self.codebook_hash)
            self._build_extractor(load_muq(model_id, device=self.device))
        return self._extractor

    def _build_extractor(self, muq: nn.Module) -> None:
        meta = self.metadata
        if self._check_muq:
            got = muq_fingerprint(muq)
            if got != meta["muq_fingerprint"]:
                raise ValueError(
                    f"the MuQ given to the tokenizer (fingerprint {got}) is not the one codebook {self.codebook_hash} "
                    f"was trained on ({meta['muq_model_id']!r}, fingerprint {meta['muq_fingerprint']}); tokens "
                    "would be meaningless. Pass the matching MuQ or omit muq to load it from the artifact."
                )
        self._extractor = MuQFeatureExtractor(muq, layer=int(meta["muq_layer"]), device=self.device,
                                              **self._extractor_kwargs)
        if self._extractor.feature_dim != self.codebook.feature_dim:
            raise ValueError(f"MuQ features are {self._extractor.feature_dim}-d but the codebook expects "
                             f"{self.codebook.feature_dim}-d")

    @property
    def tokenizer_kind(self) -> str:
        return self.codebook.tokenizer_kind

    # ------------------------------------------------------------------ tokenisation
    @torch.no_grad()
    def quantize_features(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw MuQ features ``[..., D]`` -> (ids ``[...]``, per-frame fit ``[...]``), in the normalised space.

        The fit is the squared distance to the chosen centre (``nearest_centroid``) or the logit margin of the
        chosen code over the runner-up (``linear_probe``); see :meth:`SketchCodebook.quantize`.
        """
        ids, fit = self._scorer.quantize(features.to(self.device))
        return ids.cpu(), fit.cpu()

    def tokenize_features(self, features: torch.Tensor) -> torch.Tensor:
        """``[B, F, D]`` or ``[F, D]`` MuQ features -> LongTensor ``[B, F]`` or ``[F]``."""
        return self.quantize_features(features)[0]

    @torch.no_grad()
    def topk_features(self, features: torch.Tensor, k: int) -> torch.Tensor:
        """``[..., D]`` MuQ features -> LongTensor ``[..., k]``: the ``k`` best ids per frame, best first
        (candidates for a refinement that picks among them)."""
        return self._scorer.topk(features.to(self.device), k).cpu()

    def features(self, wav: torch.Tensor, sr: int) -> torch.Tensor:
        """MuQ features at the codebook's layer, aligned to VAE frames: ``[B, T]``/``[T]`` -> ``[B, F, D]``."""
        return self.extractor.extract(wav, sr)

    def tokenize(self, wav: torch.Tensor, sr: int) -> torch.Tensor:
        """Mono audio ``[B, T]`` or ``[T]`` at ``sr`` -> LongTensor ``[B, F]`` with ``F = T * 25 // sr``."""
        return self.tokenize_features(self.features(wav, sr))

    def tokenize_many(self, wavs: list[torch.Tensor], sr: int) -> list[torch.Tensor]:
        """Clips of different lengths (mono ``[T_i]``) -> list of LongTensor ``[F_i]``; MuQ windows are batched."""
        return [self.tokenize_features(f) for f in self.extractor.extract_many(wavs, sr)]

    # ------------------------------------------------------------------ evaluation
    def evaluate_features(self, features: list[torch.Tensor]) -> CodebookMetrics:
        """Usage, perplexity and dead codes on held-out feature sequences ``[F_i, D]``, plus the quantisation
        error (``nearest_centroid``) or the mean logit margin (``linear_probe``)."""
        acc = MetricsAccumulator(self.num_codes, self.tokenizer_kind)
        for f in features:
            if f.numel() == 0:
                continue
            ids, fit = self.quantize_features(f)
            acc.update(ids, fit, self.codebook.normalise(f))
        return acc.compute()
