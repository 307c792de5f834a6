"""AdamW parameter groups and per-optimizer-step learning-rate schedules."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

SCHEDULES = ("cosine", "constant", "inverse_sqrt")


def no_decay_names(model: nn.Module) -> set[str]:
    """Parameters that must not be weight-decayed: biases, norm weights, embeddings and other 1-d tensors.

    Found by module type and dimensionality (not by name), so peft-wrapped or renamed modules are covered.
    """
    names: set[str] = set()
    for mod_name, module in model.named_modules():
        for p_name, p in module.named_parameters(recurse=False):
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            if (
                isinstance(module, nn.Embedding)
                or p.ndim < 2
                or p_name == "bias"
                or "norm" in type(module).__name__.lower()
            ):
                names.add(full)
    return names


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups over the trainable parameters: decayed matrices, and the rest with no decay."""
    skip = no_decay_names(model)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if name in skip else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay, "name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
    ]
    return [g for g in groups if g["params"]]


def lr_lambda(schedule: str, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0) -> Callable[[int], float]:
    """Multiplier of the base LR at optimizer step ``step`` (linear warm-up, then the named decay)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"optim.schedule={schedule!r}: choose from {SCHEDULES}")
    warmup_steps = max(int(warmup_steps), 0)

    def fn(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        if schedule == "inverse_sqrt":
            return math.sqrt(max(warmup_steps, 1) / max(step + 1, 1))
        span = max(total_steps - warmup_steps, 1)
        progress = min(max(step - warmup_steps, 0) / span, 1.0)
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return fn


def build_optimizer(params: Iterable[dict], lr: float, betas: tuple[float, float], eps: float) -> torch.optim.AdamW:
    return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), eps=eps)
