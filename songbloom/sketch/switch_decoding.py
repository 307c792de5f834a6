"""Sequence decoding of per-frame code scores with a bonus for switching codes, and its calibration.

Why: a probe fitted to a base model's sampled ids puts each frame in the code whose renders it most resembles,
and the cells it learns lose the short visits the true codebook makes (on the #17 proxy, recovered ids switch
9-16 % less often than the hidden ones). Adding ``bonus`` nats to every frame whose code differs from the
previous frame's, and taking the best whole path, restores the switching without moving frames whose code is
clear. The bonus is chosen so the decoded ids switch as often as the base model's own sampled ids on held-out
generations (:func:`calibrate_switch_bonus`): that rate is the base model's, not a number we pick.

Written here rather than taken from a library: with one uniform switch score the Viterbi recursion needs only the
best and second-best previous scores, O(frames x codes), where general HMM libraries take O(frames x codes^2)
(16384 codes for the release).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


@torch.no_grad()
def decode_with_switch_bonus(scores: torch.Tensor, bonus: float) -> torch.Tensor:
    """``[F, K]`` per-frame scores (log-probabilities or logits) -> ``[F]`` ids maximising
    ``sum_t scores[t, id_t] + bonus * #{t : id_t != id_(t-1)}``. ``bonus = 0`` is the per-frame argmax."""
    if scores.ndim != 2:
        raise ValueError(f"scores must be [frames, codes], got {tuple(scores.shape)}")
    frames, codes = scores.shape
    if frames == 0 or codes == 1 or bonus == 0.0:
        return scores.argmax(-1) if frames else torch.zeros(0, dtype=torch.long, device=scores.device)
    scores = scores.float()
    arange = torch.arange(codes, device=scores.device)
    best = scores[0].clone()
    back = torch.empty(frames, codes, dtype=torch.long, device=scores.device)
    back[0] = arange
    for t in range(1, frames):
        top_v, top_i = best.topk(2)
        is_first = arange == top_i[0]
        other_v = torch.where(is_first, top_v[1], top_v[0]) + bonus  # best path arriving from another code
        other_i = torch.where(is_first, top_i[1], top_i[0])
        stay = best >= other_v
        back[t] = torch.where(stay, arange, other_i)
        best = torch.maximum(best, other_v) + scores[t]
    path = torch.empty(frames, dtype=torch.long, device=scores.device)
    path[-1] = best.argmax()
    for t in range(frames - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def switch_rate(ids: Sequence[torch.Tensor]) -> float:
    """Share of consecutive frame pairs whose ids differ, over all sequences."""
    changes = sum(int((i[1:] != i[:-1]).sum()) for i in ids)
    return changes / max(1, sum(max(0, i.numel() - 1) for i in ids))


BONUS_RANGE = (-2.0, 4.0)  # nats searched by calibrate_switch_bonus; a bonus at either end did not meet its target


def calibrate_switch_bonus(scores: Sequence[torch.Tensor], target_rate: float, *, low: float = BONUS_RANGE[0],
                           high: float = BONUS_RANGE[1], steps: int = 20) -> float:
    """The bonus whose decoded ids switch at ``target_rate`` over the ``[F_i, K]`` score sequences (bisection;
    the switch rate only grows with the bonus). Clamped to ``[low, high]`` when the target lies outside."""
    if not 0.0 <= target_rate <= 1.0:
        raise ValueError(f"target switch rate {target_rate} must lie in [0, 1]")

    def rate(bonus: float) -> float:
        return switch_rate([decode_with_switch_bonus(s, bonus) for s in scores])

    if rate(low) >= target_rate:
        return low
    if rate(high) <= target_rate:
        return high
    for _ in range(steps):
        mid = (low + high) / 2
        if rate(mid) < target_rate:
            low = mid
        else:
            high = mid
    return (low + high) / 2
