"""Codebook quality on held-out frames: how many codes are used, how evenly, and how well they fit."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch


@dataclass
class CodebookMetrics:
    num_frames: int
    num_codes: int
    codes_used: int
    usage: float  # fraction of codes hit at least once
    dead_code_ratio: float  # 1 - usage
    perplexity: float  # exp(entropy of the code histogram); num_codes when perfectly uniform
    normalised_perplexity: float  # perplexity / num_codes
    # nearest_centroid only (None for a linear probe, which has no centres to be near):
    quantisation_mse: float | None  # mean squared distance of a (normalised) frame to its code
    relative_error: float | None  # mse / total variance of the frames: 0 perfect, ~1 no better than the mean
    tokenizer_kind: str = "nearest_centroid"
    # linear_probe only: mean logit margin of the chosen code over the runner-up (higher = surer ids)
    mean_margin: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def format_table(self) -> str:
        def show(v: object) -> str:
            return "n/a" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)

        rows = [(k, show(v)) for k, v in self.to_dict().items()]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


class MetricsAccumulator:
    """Streams frames (ids, per-frame fit, normalised features) without keeping them all in memory.

    The fit is what :meth:`songbloom.sketch.artifact.SketchCodebook.quantize` returns: squared distances for
    ``nearest_centroid``, logit margins for ``linear_probe``.
    """

    def __init__(self, num_codes: int, tokenizer_kind: str = "nearest_centroid"):
        self.num_codes = num_codes
        self.tokenizer_kind = tokenizer_kind
        self.histogram = torch.zeros(num_codes, dtype=torch.float64)
        self.fit_sum = 0.0
        self.n = 0
        self.sum = None
        self.sum_sq = 0.0

    def update(self, ids: torch.Tensor, fit: torch.Tensor, features: torch.Tensor) -> None:
        ids = ids.flatten().cpu()
        self.histogram += torch.bincount(ids, minlength=self.num_codes).to(torch.float64)
        self.fit_sum += float(fit.double().sum())
        x = features.reshape(-1, features.shape[-1]).double().cpu()
        self.n += x.shape[0]
        s = x.sum(0)
        self.sum = s if self.sum is None else self.sum + s
        self.sum_sq += float((x * x).sum())

    def compute(self) -> CodebookMetrics:
        if self.n == 0:
            raise ValueError("no frames to evaluate the codebook on")
        p = self.histogram / self.histogram.sum()
        nz = p[p > 0]
        entropy = float(-(nz * nz.log()).sum())
        used = int((self.histogram > 0).sum())
        mean_fit = self.fit_sum / self.n
        centroid = self.tokenizer_kind == "nearest_centroid"
        total_var = self.sum_sq / self.n - float((self.sum / self.n).pow(2).sum())
        relative = (mean_fit / total_var if total_var > 0 else float("nan")) if centroid else None
        return CodebookMetrics(
            num_frames=self.n,
            num_codes=self.num_codes,
            codes_used=used,
            usage=used / self.num_codes,
            dead_code_ratio=1.0 - used / self.num_codes,
            perplexity=math.exp(entropy),
            normalised_perplexity=math.exp(entropy) / self.num_codes,
            quantisation_mse=mean_fit if centroid else None,
            relative_error=relative,
            tokenizer_kind=self.tokenizer_kind,
            mean_margin=None if centroid else mean_fit,
        )


def cluster_purity(codes: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of frames whose code's majority label is their own label (1.0 = codes never mix classes)."""
    codes = codes.flatten().long().cpu()
    labels = labels.flatten().long().cpu()
    if codes.numel() != labels.numel() or codes.numel() == 0:
        raise ValueError("codes and labels must be non-empty and the same length")
    n_labels = int(labels.max()) + 1
    table = torch.zeros(int(codes.max()) + 1, n_labels, dtype=torch.long)
    table.index_put_((codes, labels), torch.ones_like(codes), accumulate=True)
    return float(table.max(dim=1).values.sum()) / codes.numel()
