"""Gaussian statistics of embeddings and the Frechet distance between them, all in float64.

FAD compares the Gaussian fitted to embeddings of generated audio with the one fitted to reference audio:

    FAD = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})

``Tr((S1 S2)^{1/2})`` is computed as the sum of square roots of the eigenvalues of the symmetric matrix
``S1^{1/2} S2 S1^{1/2}`` (same eigenvalues as ``S1 S2``), with symmetric eigen-decompositions only. That
avoids the complex round-off a general matrix square root produces when covariances are singular, which
they are whenever there are fewer embeddings than dimensions.

Singular covariances: both matrices get ``eps * I`` added (default ``DEFAULT_EPS = 1e-6``, the ridge
common FAD tools add when ``sqrtm`` fails) and eigenvalues that round-off made slightly negative are clipped
to zero. The ridge is added to both sides, so identical sets still give exactly zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

DEFAULT_EPS = 1e-6


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh(matrix)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``Tr((S1 S2)^{1/2})`` for symmetric PSD ``S1``, ``S2`` (float64)."""
    root1 = _psd_sqrt(sigma1)
    middle = root1 @ sigma2 @ root1
    middle = (middle + middle.T) / 2  # remove the asymmetry round-off introduced by the products
    vals = np.linalg.eigvalsh(middle)
    return float(np.sqrt(np.clip(vals, 0.0, None)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = DEFAULT_EPS) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2); see the module docstring for ``eps``."""
    mu1, mu2 = np.asarray(mu1, np.float64).reshape(-1), np.asarray(mu2, np.float64).reshape(-1)
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(
            f"shape mismatch: mu1 {mu1.shape}, mu2 {mu2.shape}, sigma1 {s1.shape}, sigma2 {s2.shape}; "
            "both sets must be embedded with the same embedder"
        )
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    ridge = eps * np.eye(mu1.size)
    s1, s2 = s1 + ridge, s2 + ridge
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(s1, s2))
    return max(value, 0.0)  # a tiny negative value can only be round-off


@dataclass
class GaussianStats:
    """Running sums of embeddings in float64, so sets can be accumulated in pieces and merged across ranks."""

    count: int
    total: np.ndarray  # (D,)
    outer: np.ndarray  # (D, D) sum of x x^T

    @classmethod
    def empty(cls, dim: int) -> GaussianStats:
        return cls(0, np.zeros(dim), np.zeros((dim, dim)))

    @classmethod
    def from_embeddings(cls, embeddings: np.ndarray | torch.Tensor) -> GaussianStats:
        x = _as_float64(embeddings)
        stats = cls.empty(x.shape[1])
        stats.add(x)
        return stats

    @property
    def dim(self) -> int:
        return int(self.total.shape[0])

    def add(self, embeddings: np.ndarray | torch.Tensor) -> None:
        x = _as_float64(embeddings)
        if x.shape[1] != self.dim:
            raise ValueError(f"embedding dim {x.shape[1]} does not match the accumulated dim {self.dim}")
        self.count += x.shape[0]
        self.total += x.sum(axis=0)
        self.outer += x.T @ x

    def merge(self, other: GaussianStats) -> GaussianStats:
        if other.dim != self.dim:
            raise ValueError(f"cannot merge stats of dim {self.dim} and {other.dim}")
        return GaussianStats(self.count + other.count, self.total + other.total, self.outer + other.outer)

    def mean(self) -> np.ndarray:
        self._require(1)
        return self.total / self.count

    def covariance(self) -> np.ndarray:
        """Unbiased (N - 1) covariance."""
        self._require(2)
        mu = self.mean()
        cov = (self.outer - self.count * np.outer(mu, mu)) / (self.count - 1)
        return (cov + cov.T) / 2

    def save(self, path: str | Path) -> None:
        """Store reference statistics (plain ``.npz``, no pickle) so a reference set is embedded once."""
        np.savez(Path(path), count=np.array(self.count), total=self.total, outer=self.outer)

    @classmethod
    def load(cls, path: str | Path) -> GaussianStats:
        with np.load(Path(path), allow_pickle=False) as f:
            return cls(int(f["count"]), f["total"].astype(np.float64), f["outer"].astype(np.float64))

    def _require(self, n: int) -> None:
        if self.count < n:
            raise ValueError(f"need at least {n} embeddings for FAD statistics, have {self.count}")


def _as_float64(embeddings: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(embeddings, torch.Tensor):
        embeddings = embeddings.detach().to("cpu", torch.float64).numpy()
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be [N, D], got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("embeddings contain NaN or inf; check the audio (silent or clipped files) and the embedder")
    return x


def frechet_distance_from_stats(a: GaussianStats, b: GaussianStats, eps: float = DEFAULT_EPS) -> float:
    return frechet_distance(a.mean(), a.covariance(), b.mean(), b.covariance(), eps=eps)
