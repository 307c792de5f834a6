"""Training objective: sketch cross-entropy + lambda x flow MSE, with the diagnostics we log."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from songbloom.models.songbloom import ForwardOutput

TIMESTEP_BUCKETS = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass
class LossTerms:
    loss: torch.Tensor
    ar_loss: torch.Tensor
    flow_loss: torch.Tensor
    sketch_accuracy: torch.Tensor
    num_sketch_targets: int
    flow_by_bucket: dict[str, torch.Tensor] = field(default_factory=dict)


def songbloom_loss(out: ForwardOutput, *, ignore_id: int, flow_weight: float = 0.1) -> LossTerms:
    """CE over the sketch targets (``ignore_id`` = the model's special id marks padding) plus
    ``flow_weight`` x MSE between the DiT prediction and the flow target, averaged over valid patches."""
    logits = out.ar_logit.float()
    target = out.ar_target
    ar_loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=ignore_id)
    with torch.no_grad():
        valid = target != ignore_id
        correct = (logits.argmax(-1) == target) & valid
        n_valid = int(valid.sum())
        accuracy = correct.sum().float() / max(n_valid, 1)
    per_patch = (out.nar_pred.float() - out.nar_target.float()).pow(2).mean(dim=(1, 2))
    flow_loss = per_patch.mean() if per_patch.numel() else per_patch.sum()
    buckets = {}
    with torch.no_grad():
        t = out.nar_t.float()
        for lo, hi in zip(TIMESTEP_BUCKETS[:-1], TIMESTEP_BUCKETS[1:], strict=True):
            sel = (t >= lo) & ((t < hi) if hi < 1.0 else (t <= hi))
            if bool(sel.any()):
                buckets[f"{lo:.2f}-{hi:.2f}"] = per_patch.detach()[sel].mean()
    return LossTerms(
        loss=ar_loss + flow_weight * flow_loss,
        ar_loss=ar_loss,
        flow_loss=flow_loss,
        sketch_accuracy=accuracy,
        num_sketch_targets=n_valid,
        flow_by_bucket=buckets,
    )
