"""Minibatch k-means: it finds well-separated blobs, re-seeds dead codes and round-trips its state."""

from __future__ import annotations

import pytest
import torch

from songbloom.sketch import MiniBatchKMeans, cluster_purity
from songbloom.sketch.kmeans import nearest_code
from songbloom.sketch.metrics import MetricsAccumulator


def _blobs(n_per: int, k: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(k, dim, generator=g) * 10
    x = torch.cat([means[i] + torch.randn(n_per, dim, generator=g) for i in range(k)])
    return x, torch.arange(k).repeat_interleave(n_per)


def test_kmeans_recovers_blobs_and_beats_random_codes():
    x, y = _blobs(200, 6, 16, seed=0)
    km = MiniBatchKMeans(6, 16, seed=0, reseed_every=0)
    km.init_kmeans_plus_plus(x[torch.randperm(x.shape[0])[:300]])
    for _ in range(3):
        for s in range(0, x.shape[0], 100):
            km.partial_fit(x[torch.randperm(x.shape[0])][s : s + 100])
    ids, _ = nearest_code(x, km.centers)
    assert cluster_purity(ids, y) > 0.99
    assert cluster_purity(torch.randint(0, 6, y.shape), y) < 0.5


def test_dead_codes_are_reseeded_onto_data():
    x, _ = _blobs(100, 2, 8, seed=1)
    km = MiniBatchKMeans(4, 8, seed=0, reseed_every=1)
    km.init_random(x)
    km.centers[2:] = 1e6  # two codes far from every frame: they can never win a frame
    km.partial_fit(x)
    assert km.total_reseeded == 2
    assert km.centers[2:].abs().max() < 1e3  # now sitting on data frames
    km.partial_fit(x)
    ids, _ = nearest_code(x, km.centers)
    assert ids.unique().numel() >= 3


def test_state_round_trip_continues_identically():
    x, _ = _blobs(64, 4, 8, seed=2)
    a = MiniBatchKMeans(4, 8, seed=3, reseed_every=2)
    a.init_kmeans_plus_plus(x)
    a.partial_fit(x[:64])
    b = MiniBatchKMeans(4, 8, seed=99, reseed_every=2)
    b.load_state_dict(a.state_dict())
    for m in (a, b):
        m.partial_fit(x[64:192])
        m.partial_fit(x[192:])
    assert torch.equal(a.centers, b.centers) and a.steps == b.steps
    with pytest.raises(ValueError, match="expected"):
        MiniBatchKMeans(5, 8).load_state_dict(a.state_dict())


def test_kmeans_refuses_too_small_sample_and_uninitialised_use():
    km = MiniBatchKMeans(10, 4)
    with pytest.raises(ValueError, match="at least num_codes=10"):
        km.init_kmeans_plus_plus(torch.randn(5, 4))
    with pytest.raises(RuntimeError, match="initialise"):
        km.partial_fit(torch.randn(5, 4))


def test_metrics_on_known_assignments():
    acc = MetricsAccumulator(4)
    feats = torch.tensor([[0.0], [2.0], [4.0], [6.0]])
    acc.update(torch.tensor([0, 0, 1, 1]), torch.tensor([1.0, 1.0, 1.0, 1.0]), feats)
    m = acc.compute()
    assert m.codes_used == 2 and m.usage == 0.5 and m.dead_code_ratio == 0.5
    assert m.perplexity == pytest.approx(2.0)
    assert m.quantisation_mse == pytest.approx(1.0) and m.relative_error == pytest.approx(1.0 / 5.0)
