"""Sequence decoding with a switch bonus: it is the exact best path, 0 is the per-frame argmax, and the
calibration finds the bonus that gives a target switch rate."""

from __future__ import annotations

import itertools

import pytest
import torch

from songbloom.sketch.switch_decoding import calibrate_switch_bonus, decode_with_switch_bonus, switch_rate


def _brute_force(scores: torch.Tensor, bonus: float) -> float:
    frames, codes = scores.shape
    best = -float("inf")
    for path in itertools.product(range(codes), repeat=frames):
        total = sum(float(scores[t, c]) for t, c in enumerate(path))
        total += bonus * sum(a != b for a, b in zip(path[1:], path[:-1]))
        best = max(best, total)
    return best


def _value(scores: torch.Tensor, path: torch.Tensor, bonus: float) -> float:
    return float(scores[torch.arange(len(path)), path].sum()) + bonus * int((path[1:] != path[:-1]).sum())


@pytest.mark.parametrize("bonus", [-1.0, -0.2, 0.3, 1.5])
def test_the_decoded_path_is_the_best_path(bonus: float) -> None:
    g = torch.Generator().manual_seed(int(bonus * 10) + 7)
    for _ in range(6):
        scores = torch.randn(6, 3, generator=g)
        path = decode_with_switch_bonus(scores, bonus)
        assert _value(scores, path, bonus) == pytest.approx(_brute_force(scores, bonus), abs=1e-5)


def test_no_bonus_is_the_per_frame_argmax_and_the_bonus_moves_only_near_ties() -> None:
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(50, 7, generator=g)
    assert torch.equal(decode_with_switch_bonus(scores, 0.0), scores.argmax(-1))
    # a clear code keeps its frames whatever the bonus; a near tie with the previous frame's code flips
    clear = torch.tensor([[5.0, 0.0], [5.0, 0.0], [5.0, 0.0]])
    assert decode_with_switch_bonus(clear, 1.0).tolist() == [0, 0, 0]
    tie = torch.tensor([[5.0, 0.0], [0.1, 0.0], [5.0, 0.0]])
    assert decode_with_switch_bonus(tie, 0.0).tolist() == [0, 0, 0]
    assert decode_with_switch_bonus(tie, 0.2).tolist() == [0, 1, 0]
    assert decode_with_switch_bonus(torch.zeros(0, 4), 1.0).numel() == 0


def test_the_calibrated_bonus_reaches_the_target_rate() -> None:
    g = torch.Generator().manual_seed(1)
    seqs = [torch.log_softmax(torch.randn(40, 6, generator=g) * 2, -1) for _ in range(5)]
    plain = switch_rate([s.argmax(-1) for s in seqs])
    for target in (plain - 0.2, plain + 0.1):
        bonus = calibrate_switch_bonus(seqs, target)
        got = switch_rate([decode_with_switch_bonus(s, bonus) for s in seqs])
        assert abs(got - target) < 0.02, (target, got, bonus)
        assert (bonus > 0) == (target > plain)
    # out of reach: clamped to the search interval
    assert calibrate_switch_bonus(seqs, 0.0, low=-0.5, high=0.5) == -0.5
    assert calibrate_switch_bonus(seqs, 1.0, low=-0.5, high=0.5) == 0.5
    with pytest.raises(ValueError, match="target switch rate"):
        calibrate_switch_bonus(seqs, 1.5)
    with pytest.raises(ValueError, match=r"\[frames, codes\]"):
        decode_with_switch_bonus(torch.zeros(2, 3, 4), 1.0)


def test_switch_rate_counts_pairs_within_sequences() -> None:
    assert switch_rate([torch.tensor([1, 1, 2]), torch.tensor([3, 4])]) == pytest.approx(2 / 3)
    assert switch_rate([torch.tensor([5])]) == 0.0
