import numpy as np
import pytest
import scipy.linalg
import torch

from songbloom.eval import GaussianStats, frechet_distance, frechet_distance_from_stats


def _random_cov(rng, d, rank=None):
    a = rng.standard_normal((d, rank or d))
    return a @ a.T / d


def test_closed_form_for_known_gaussians():
    rng = np.random.default_rng(0)
    d = 6
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = _random_cov(rng, d), _random_cov(rng, d)
    expected = float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * np.real(scipy.linalg.sqrtm(s1 @ s2))))
    assert frechet_distance(mu1, s1, mu2, s2, eps=0.0) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_diagonal_gaussians_match_the_per_dimension_formula():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = 1.0 + 0.0 + 4.0 + sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)  # = 5 + 1 + 1 + 4
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2), eps=0.0) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(11.0)


def test_identical_sets_are_zero_even_with_singular_covariance():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 16))  # 5 samples in 16 dims: covariance of rank 4
    stats = GaussianStats.from_embeddings(x)
    assert np.linalg.matrix_rank(stats.covariance()) == 4
    assert frechet_distance_from_stats(stats, GaussianStats.from_embeddings(x.copy())) == pytest.approx(0.0, abs=1e-9)


def test_singular_covariances_give_finite_values_matching_the_ridge_closed_form():
    rng = np.random.default_rng(2)
    d, eps = 8, 1e-6
    s1, s2 = _random_cov(rng, d, rank=2), _random_cov(rng, d, rank=3)
    mu = np.zeros(d)
    value = frechet_distance(mu, s1, mu, s2, eps=eps)
    r1, r2 = s1 + eps * np.eye(d), s2 + eps * np.eye(d)
    expected = float(np.trace(r1 + r2 - 2 * np.real(scipy.linalg.sqrtm(r1 @ r2))))
    assert np.isfinite(value) and value == pytest.approx(expected, rel=1e-6)


def test_sample_statistics_converge_to_the_population_distance():
    rng = np.random.default_rng(3)
    a = rng.normal(0.0, 1.0, size=(20000, 2))
    b = rng.normal(0.0, 2.0, size=(20000, 2)) + np.array([3.0, 0.0])
    value = frechet_distance_from_stats(GaussianStats.from_embeddings(a), GaussianStats.from_embeddings(b))
    assert value == pytest.approx(9.0 + 2 * (1.0 - 2.0) ** 2, rel=0.05)  # 11


def test_streamed_and_merged_stats_equal_one_pass(tmp_path):
    x = torch.randn(30, 4, dtype=torch.float64)
    whole = GaussianStats.from_embeddings(x)
    parts = GaussianStats.from_embeddings(x[:10]).merge(GaussianStats.from_embeddings(x[10:]))
    np.testing.assert_allclose(parts.covariance(), np.cov(x.numpy(), rowvar=False), rtol=1e-10)
    np.testing.assert_allclose(whole.mean(), parts.mean(), rtol=1e-12)
    whole.save(tmp_path / "ref.npz")
    loaded = GaussianStats.load(tmp_path / "ref.npz")
    assert loaded.count == 30 and np.array_equal(loaded.outer, whole.outer)


def test_bad_inputs_are_explained():
    with pytest.raises(ValueError, match="same embedder"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="at least 2"):
        GaussianStats.from_embeddings(np.zeros((1, 3))).covariance()
    with pytest.raises(ValueError, match="NaN"):
        GaussianStats.from_embeddings(np.array([[np.nan, 0.0]]))
