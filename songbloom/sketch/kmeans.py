"""Minibatch k-means with k-means++ seeding and dead-code re-seeding, on CPU or GPU.

Why not an EMA vector quantiser: k-means with per-centre step sizes (1 / points seen, Sculley 2010)
converges without a decay to tune, and explicit re-seeding keeps every one of the 16384 codes in use,
which the public fork's EMA VQ (no init, no re-seeding) did not.
"""

from __future__ import annotations

import logging

import torch

logger = logging.getLogger(__name__)


def squared_distances(x: torch.Tensor, centers: torch.Tensor, centers_sq: torch.Tensor | None = None) -> torch.Tensor:
    """``||x - c||^2`` for every pair: ``[N, D] x [K, D] -> [N, K]`` (clamped at 0 against round-off)."""
    if centers_sq is None:
        centers_sq = (centers * centers).sum(-1)
    d = (x * x).sum(-1, keepdim=True) - 2.0 * (x @ centers.T) + centers_sq
    return d.clamp_min_(0.0)


@torch.no_grad()
def nearest_code(x: torch.Tensor, centers: torch.Tensor, *, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of and squared distance to the nearest centre for each row of ``x`` (chunked to bound memory)."""
    centers_sq = (centers * centers).sum(-1)
    ids, dists = [], []
    for s in range(0, x.shape[0], chunk):
        rows = x[s : s + chunk]
        # ||x||^2 is the same for every centre, so the argmin only needs ||c||^2 - 2 x.c (one fused addmm);
        # the row norm is added back to the winning distance only.
        partial = torch.addmm(centers_sq, rows, centers.T, alpha=-2.0)
        best, idx = partial.min(dim=-1)
        ids.append(idx)
        dists.append((best + (rows * rows).sum(-1)).clamp_min_(0.0))
    if not ids:
        return torch.zeros(0, dtype=torch.long, device=x.device), torch.zeros(0, device=x.device)
    return torch.cat(ids), torch.cat(dists)


class MiniBatchKMeans:
    """State: ``centers [K, D]``, ``counts [K]`` (points absorbed, sets the step size), hits since the last check."""

    def __init__(self, num_codes: int, dim: int, *, seed: int = 0, device: str | torch.device = "cpu",
                 reseed_every: int = 50):
        if num_codes < 1 or dim < 1:
            raise ValueError(f"need num_codes >= 1 and dim >= 1, got {num_codes}, {dim}")
        self.num_codes = int(num_codes)
        self.dim = int(dim)
        self.device = torch.device(device)
        self.reseed_every = int(reseed_every)
        self.centers = torch.zeros(num_codes, dim, device=self.device)
        self.counts = torch.zeros(num_codes, dtype=torch.float64, device=self.device)
        self.hits = torch.zeros(num_codes, dtype=torch.long, device=self.device)
        self.steps = 0
        self.total_reseeded = 0
        self.initialized = False
        self.generator = torch.Generator(device="cpu").manual_seed(int(seed))

    # ------------------------------------------------------------------ initialisation
    @torch.no_grad()
    def init_kmeans_plus_plus(self, sample: torch.Tensor, *, lloyd_iters: int = 2) -> None:
        """k-means++ (D^2 sampling) on ``sample [N, D]``, then a few Lloyd passes on the same sample."""
        x = sample.to(self.device, torch.float32)
        n = x.shape[0]
        if n < self.num_codes:
            raise ValueError(
                f"k-means++ needs at least num_codes={self.num_codes} frames in the init sample, got {n}: "
                "add audio or lower the codebook size"
            )
        x_sq = (x * x).sum(-1)

        def dist_to(i: int) -> torch.Tensor:  # one matrix-vector product per new centre
            return (x_sq - 2.0 * (x @ x[i]) + x_sq[i]).clamp_min_(0.0)

        first = int(torch.randint(n, (1,), generator=self.generator))
        self.centers[0] = x[first]
        min_d = dist_to(first)
        for k in range(1, self.num_codes):
            total = float(min_d.sum())
            if total <= 0:  # every point already coincides with a centre: fall back to uniform picks
                pick = int(torch.randint(n, (1,), generator=self.generator))
            else:
                probs = (min_d / total).to("cpu", torch.float64)
                pick = int(torch.multinomial(probs, 1, generator=self.generator))
            self.centers[k] = x[pick]
            torch.minimum(min_d, dist_to(pick), out=min_d)
        for _ in range(lloyd_iters):
            ids, _ = nearest_code(x, self.centers)
            sums = torch.zeros_like(self.centers).index_add_(0, ids, x)
            cnt = torch.bincount(ids, minlength=self.num_codes).to(x.dtype)
            used = cnt > 0
            self.centers[used] = sums[used] / cnt[used, None]
        self.initialized = True
        logger.info("k-means++ initialised %d codes from %d frames", self.num_codes, n)

    @torch.no_grad()
    def init_random(self, sample: torch.Tensor) -> None:
        """Distinct random frames of ``sample`` as centres (cheap; for very large codebooks on CPU)."""
        x = sample.to(self.device, torch.float32)
        if x.shape[0] < self.num_codes:
            raise ValueError(f"random init needs at least num_codes={self.num_codes} frames, got {x.shape[0]}")
        perm = torch.randperm(x.shape[0], generator=self.generator)[: self.num_codes]
        self.centers.copy_(x[perm.to(x.device)])
        self.initialized = True

    # ------------------------------------------------------------------ training
    @torch.no_grad()
    def partial_fit(self, batch: torch.Tensor, *, allow_reseed: bool = True) -> float:
        """One minibatch update; returns the batch's mean squared quantisation error before the update."""
        if not self.initialized:
            raise RuntimeError("initialise the codebook (init_kmeans_plus_plus / init_random) before partial_fit")
        x = batch.to(self.device, torch.float32)
        if x.shape[0] == 0:
            return float("nan")
        ids, dist = nearest_code(x, self.centers)
        batch_counts = torch.bincount(ids, minlength=self.num_codes)
        sums = torch.zeros_like(self.centers).index_add_(0, ids, x)
        used = batch_counts > 0
        self.counts += batch_counts.to(self.counts.dtype)
        self.hits += batch_counts
        step = (batch_counts[used].to(torch.float64) / self.counts[used]).to(x.dtype)
        means = sums[used] / batch_counts[used, None].to(x.dtype)
        self.centers[used] += step[:, None] * (means - self.centers[used])
        self.steps += 1
        if allow_reseed and self.reseed_every > 0 and self.steps % self.reseed_every == 0:
            self.reseed_dead(x, dist)
        return float(dist.mean())

    @torch.no_grad()
    def reseed_dead(self, x: torch.Tensor, dist: torch.Tensor) -> int:
        """Move codes with no hits since the last check onto badly quantised frames of ``x`` (D^2 sampling)."""
        dead = torch.nonzero(self.hits == 0).flatten()
        self.hits.zero_()
        n_dead = int(dead.numel())
        if n_dead == 0:
            return 0
        weights = dist.to("cpu", torch.float64).clamp_min(0)
        if float(weights.sum()) <= 0:
            weights = torch.ones_like(weights)
        replace = n_dead > x.shape[0]
        picks = torch.multinomial(weights, n_dead, replacement=replace, generator=self.generator).to(x.device)
        self.centers[dead] = x[picks]
        self.counts[dead] = 1.0
        self.total_reseeded += n_dead
        logger.debug("re-seeded %d dead codes at step %d", n_dead, self.steps)
        return n_dead

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            "centers": self.centers.cpu(),
            "counts": self.counts.cpu(),
            "hits": self.hits.cpu(),
            "steps": torch.tensor(self.steps),
            "total_reseeded": torch.tensor(self.total_reseeded),
            "initialized": torch.tensor(int(self.initialized)),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if tuple(state["centers"].shape) != (self.num_codes, self.dim):
            raise ValueError(
                f"k-means state has centres {tuple(state['centers'].shape)}, expected {(self.num_codes, self.dim)}"
            )
        self.centers = state["centers"].to(self.device, torch.float32).clone()
        self.counts = state["counts"].to(self.device, torch.float64).clone()
        self.hits = state["hits"].to(self.device, torch.long).clone()
        self.steps = int(state["steps"])
        self.total_reseeded = int(state["total_reseeded"])
        self.initialized = bool(int(state["initialized"]))
        self.generator.set_state(state["generator"].to(torch.uint8))
