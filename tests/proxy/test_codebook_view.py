"""The codebook-view diagnostic: nearest mean of the teacher's renders, in the hidden tokenizer's projection."""

import pytest
import torch

from songbloom.proxy.codebook_view import codebook_view_scores, nearest_render_mean_ids, render_means_in_view
from songbloom.proxy.hidden import HiddenTokenizer


def _tokenizer(num_codes: int = 6, dim: int = 12, proj: int = 3) -> HiddenTokenizer:
    g = torch.Generator().manual_seed(0)
    return HiddenTokenizer(layer=1, projection=torch.randn(dim, proj, generator=g),
                           centers=4.0 * torch.randn(num_codes, proj, generator=g))


def _renders(tok: HiddenTokenizer, labels: torch.Tensor, noise: float, seed: int) -> torch.Tensor:
    """Features whose projection is the label's centre plus noise (least-squares lift of the projected point)."""
    g = torch.Generator().manual_seed(seed)
    z = tok.centers[labels] + noise * torch.randn(labels.numel(), tok.centers.shape[1], generator=g)
    return torch.linalg.lstsq(tok.projection.T, z.T).solution.T


def _trajectory(tok: HiddenTokenizer, frames: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(frames, tok.projection.shape[0], generator=g).cumsum(0) * 0.7


def test_faithful_renders_give_back_the_hidden_ids_and_their_switching() -> None:
    tok = _tokenizer()
    labels = [torch.arange(6).repeat(20)]
    feats = [_renders(tok, labels[0], noise=0.05, seed=1)]
    held = [_trajectory(tok, 80, seed) for seed in (2, 3)]
    hidden = [tok.ids(f) for f in held]
    scores = codebook_view_scores(tok, feats, labels, held, hidden)
    assert scores["id_agreement"] > 0.95
    rec_change = scores["change_rate"]
    hid_change = sum(int((h[1:] != h[:-1]).sum()) for h in hidden) / sum(h.numel() - 1 for h in hidden)
    assert abs(rec_change - hid_change) < 0.05
    assert scores["label_agreement"] == pytest.approx(1.0)
    assert scores["codes_seen"] == 6.0


def test_means_come_from_the_renders_not_the_hidden_centres() -> None:
    tok = _tokenizer()
    # the teacher renders id 0 where id 1's centre is and vice versa: the rule follows its renders
    labels = torch.tensor([0, 1] * 10)
    feats = _renders(tok, 1 - labels, noise=0.0, seed=1)
    means, seen = render_means_in_view(tok, [feats], [labels])
    assert torch.allclose(means[0], tok.centers[1], atol=1e-3) and torch.allclose(means[1], tok.centers[0], atol=1e-3)
    assert seen.tolist() == [True, True, False, False, False, False]
    held = [_renders(tok, torch.tensor([0, 0, 1, 1]), noise=0.0, seed=2)]
    scores = codebook_view_scores(tok, [feats], [labels], held, [torch.tensor([0, 0, 1, 1])])
    assert scores["id_agreement"] == 0.0  # swapped, so never the hidden id
    assert scores["codes_seen"] == 2.0


def test_codes_never_sampled_are_never_predicted() -> None:
    tok = _tokenizer()
    labels = [torch.tensor([1, 2, 3, 4, 5] * 8)]
    feats = [_renders(tok, labels[0], noise=0.05, seed=1)]
    held = [_renders(tok, torch.zeros(10, dtype=torch.long), noise=0.0, seed=4)]
    means, seen = render_means_in_view(tok, feats, labels)
    assert 0 not in nearest_render_mean_ids(tok, means, seen, held[0]).tolist()


def test_an_empty_corpus_is_refused() -> None:
    with pytest.raises(ValueError, match="no songs"):
        codebook_view_scores(_tokenizer(), [], [], [], [])
