"""The comparison the recovery report makes: a fresh k-means codebook, as the k-means route would train one.

Its code numbers mean nothing to the base model (the LM never saw them), which is why the route from scratch
retrains the sketch tables. Fitted on the held-out songs' MuQ features with the same minibatch k-means as
``python -m songbloom.sketch train`` (k-means++ start, standardised features).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from songbloom.sketch.artifact import SketchCodebook
from songbloom.sketch.kmeans import MiniBatchKMeans
from songbloom.sketch.muq_backbone import MUQ_WEIGHTS_LICENCE

logger = logging.getLogger(__name__)

MIN_FRAMES_PER_CODE = 2  # below this a code has too few frames to mean anything; fewer codes are fitted


def fresh_num_codes(frames: int, num_pitch: int) -> int:
    """Codes of a fresh codebook fitted on ``frames`` frames: ``num_pitch`` when there are enough frames, fewer
    otherwise (the ids then use part of the model's range, which changes nothing: they are new to it anyway)."""
    return max(1, min(int(num_pitch), int(frames) // MIN_FRAMES_PER_CODE))


@torch.no_grad()
def fit_fresh_codebook(
    features: Sequence[torch.Tensor],
    num_codes: int,
    *,
    layer: int,
    muq_model_id: str,
    muq_fingerprint: str,
    epochs: int = 10,
    batch_frames: int = 4096,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> SketchCodebook:
    """A nearest-centroid codebook of ``num_codes`` codes on ``features`` (per song ``[F_i, D]``, MuQ ``layer``)."""
    x = torch.cat([f.float() for f in features])
    if x.shape[0] < num_codes:
        raise ValueError(f"{x.shape[0]} frames for {num_codes} codes: k-means needs at least one frame per code")
    mean, std = x.mean(0), x.std(0).clamp_min(1e-5)
    xn = ((x - mean) / std).to(device)
    gen = torch.Generator().manual_seed(seed)
    km = MiniBatchKMeans(num_codes, xn.shape[1], seed=seed, device=device)
    sample = xn[torch.randperm(xn.shape[0], generator=gen)[: max(4 * num_codes, 2048)].to(xn.device)]
    km.init_kmeans_plus_plus(sample)
    for epoch in range(epochs):
        order = torch.randperm(xn.shape[0], generator=gen).to(xn.device)
        last = epoch == epochs - 1
        for s in range(0, xn.shape[0], batch_frames):
            km.partial_fit(xn[order[s : s + batch_frames]], allow_reseed=not last)
    logger.info("fresh k-means codebook: %d codes on %d frames (MuQ layer %d), %d codes re-seeded", num_codes,
                x.shape[0], layer, km.total_reseeded)
    return SketchCodebook.nearest_centroid(
        km.centers.cpu(), mean, std, muq_model_id=muq_model_id, muq_fingerprint=muq_fingerprint, muq_layer=layer,
        muq_licence=MUQ_WEIGHTS_LICENCE, feature_normalisation="standardize",
        training={"purpose": "fresh k-means comparison of the sketch recovery report", "frames": int(x.shape[0]),
                  "epochs": epochs, "seed": seed},
    )
