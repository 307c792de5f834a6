"""AdamW parameter groups and per-optimizer-step learning-rate schedules."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable

import torch
from torch import nn

from songbloom.building.lora import is_adapter_param
from songbloom.config.run import OptimConfig

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


def _split(model: nn.Module, names: set[str], decayed) -> tuple[list, list]:
    """The trainable parameters of ``names`` in model order (optimizer states of resumed checkpoints are matched
    by position): those ``decayed(name, p)`` accepts, and the others."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad and name in names:
            (decay if decayed(name, p) else no_decay).append(p)
    return decay, no_decay


def parameter_groups(model: nn.Module, optim: OptimConfig | float, low_lr: Collection[str] = ()) -> list[dict]:
    """AdamW groups over the trainable parameters, with their ``weight_decay`` (and ``lr`` where it differs from
    the optimizer's, ``optim.lr``). A bare number is ``optim.weight_decay`` with the other settings at defaults.

    ``decay`` (matrices at ``optim.weight_decay``) and ``no_decay`` (biases, norms, embedding tables), at
    ``optim.lr``. When ``optim.fully_trained_lr`` or ``optim.fully_trained_weight_decay`` is set and the run has
    LoRA adapters, those two groups hold the adapters (``adapters/...``) and the tensors trained in full beside
    them (sketch tables, the lyric table, ``trainable.extra_regex``) get ``fully_trained/...`` groups at
    ``optim.fully_trained_lr`` (None: ``optim.lr``); their decay is the same rule when
    ``optim.fully_trained_weight_decay`` is None, else that value on every tensor of 2 or more dimensions,
    embedding tables included (1-d tensors never decay). Unset, the layout is the two groups of earlier
    versions, so their checkpoints' optimizer states still resume.

    ``low_lr``: names of base sketch tables kept at a low rate (``trainable.recovered_tables: low_lr``): a last
    ``recovered_tables`` group at ``optim.recovered_tables_lr`` (None: ``optim.lr / 10``) without weight decay,
    which would pull the base values towards zero.
    """
    if not isinstance(optim, OptimConfig):
        optim = OptimConfig(weight_decay=float(optim))
    skip = no_decay_names(model)
    low_names = set(low_lr)
    low = {n for n, p in model.named_parameters() if p.requires_grad and n in low_names}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad} - low
    adapters = {n for n in trainable if is_adapter_param(n)}
    separate = optim.fully_trained_lr is not None or optim.fully_trained_weight_decay is not None
    full = trainable - adapters if adapters and separate else set()
    adapters = adapters if full else set()
    prefix = "adapters/" if adapters else ""
    decay, no_decay = _split(model, adapters or trainable, lambda n, p: n not in skip)
    groups = [
        {"params": decay, "weight_decay": optim.weight_decay, "name": f"{prefix}decay"},
        {"params": no_decay, "weight_decay": 0.0, "name": f"{prefix}no_decay"},
    ]
    if full:
        lr = optim.lr if optim.fully_trained_lr is None else optim.fully_trained_lr
        wd = optim.fully_trained_weight_decay
        rule = (lambda n, p: n not in skip) if wd is None else (lambda n, p: p.ndim >= 2)
        decay, no_decay = _split(model, full, rule)
        groups += [
            {"params": decay, "lr": lr, "weight_decay": optim.weight_decay if wd is None else wd,
             "name": "fully_trained/decay"},
            {"params": no_decay, "lr": lr, "weight_decay": 0.0, "name": "fully_trained/no_decay"},
        ]  # fmt: skip
    if low:
        lr = optim.lr / 10 if optim.recovered_tables_lr is None else optim.recovered_tables_lr
        params = [p for n, p in model.named_parameters() if n in low]  # model order
        groups.append({"params": params, "lr": lr, "weight_decay": 0.0, "name": "recovered_tables"})
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
