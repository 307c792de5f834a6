"""The hidden tokenizer of the proxy: k-means on a random projection of one MuQ layer, both chosen by a seed.

It plays the released model's unpublished codebook: the teacher is trained on its ids, and the recovery never
sees it (its folder is deleted before recovery starts). The projection makes the true quantiser something a
nearest-centroid codebook in raw MuQ space cannot express exactly, as a real codebook may not be.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from songbloom.checkpoints.safe_load import load_safetensors, safetensors_metadata
from songbloom.sketch import MiniBatchKMeans
from songbloom.sketch.kmeans import nearest_code
from songbloom.sketch.muq_backbone import muq_layer_count

PROJECTION_DIM = 16


@dataclass
class HiddenTokenizer:
    layer: int
    projection: torch.Tensor  # [D, PROJECTION_DIM]
    centers: torch.Tensor  # [K, PROJECTION_DIM]

    @property
    def num_codes(self) -> int:
        return int(self.centers.shape[0])

    def ids(self, features: torch.Tensor) -> torch.Tensor:
        """``[F, D]`` features of :attr:`layer` -> ``[F]`` ids."""
        return nearest_code(features.float() @ self.projection, self.centers)[0]

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        save_file({"projection": self.projection.contiguous(), "centers": self.centers.contiguous()},
                  str(folder / "hidden_tokenizer.safetensors"), metadata={"layer": str(self.layer)})
        (folder / "README.txt").write_text("The proxy's hidden tokenizer: recovery must never read this folder.\n")
        return folder

    @classmethod
    def load(cls, folder: Path) -> HiddenTokenizer:
        path = folder / "hidden_tokenizer.safetensors"
        t = load_safetensors(path)
        return cls(int(safetensors_metadata(path)["layer"]), t["projection"], t["centers"])

    @staticmethod
    def forget(folder: Path) -> None:
        """Delete the tokenizer's folder (done before recovery starts, so nothing can peek)."""
        shutil.rmtree(folder, ignore_errors=False)


def choose_layer(muq: torch.nn.Module, seed: int) -> int:
    """The seed's MuQ layer (any hidden state but the raw encoder input)."""
    layers = muq_layer_count(muq)
    return 1 + seed % (layers - 1) if layers > 1 else 0


EDGE_FRAMES = 2


def fit_hidden_tokenizer(features: Sequence[torch.Tensor], layer: int, num_codes: int, seed: int, *,
                         iterations: int = 40) -> HiddenTokenizer:
    """k-means with ``num_codes`` centres over the seeded projection of ``features`` (each ``[F_i, D]``).

    The first and last frames of each clip are left out of the fit: MuQ reads them through the STFT's
    reflection padding, and such outliers would each take a centre of their own. They still get ids.
    """
    x = torch.cat([f[EDGE_FRAMES:-EDGE_FRAMES].float() for f in features if f.shape[0] > 2 * EDGE_FRAMES])
    gen = torch.Generator().manual_seed(seed * 7919 + 17)
    projection = torch.randn(x.shape[1], PROJECTION_DIM, generator=gen) / x.shape[1] ** 0.5
    xp = x @ projection
    km = MiniBatchKMeans(num_codes, PROJECTION_DIM, seed=seed)
    km.init_kmeans_plus_plus(xp)
    for _ in range(iterations):
        km.partial_fit(xp)
    return HiddenTokenizer(layer, projection, km.centers.detach().clone())
