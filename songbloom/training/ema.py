"""Exponential moving average of the trainable weights, updated once per optimizer step."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


class TrainableEMA:
    """EMA over the parameters that train (adapters and declared full sets): frozen ones never change.

    ``decay`` warms up as ``min(decay, (1 + n) / (10 + n))`` so early averages are not dominated by the init.
    Shadows are fp32 whatever the parameter dtype.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True):
        self.decay = float(decay)
        self.warmup = warmup
        self.num_updates = 0
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        params = dict(model.named_parameters())
        self.shadow = {n: params[n].detach().float().clone() for n in self.names}

    def current_decay(self) -> float:
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        params = dict(model.named_parameters())
        for n in self.names:
            self.shadow[n].lerp_(params[n].detach().float(), 1.0 - d)
        self.num_updates += 1

    @contextlib.contextmanager
    def swapped_in(self, model: nn.Module) -> Iterator[None]:
        """Temporarily load the EMA weights into ``model`` (validation, export)."""
        params = dict(model.named_parameters())
        backup = {n: params[n].detach().clone() for n in self.names}
        with torch.no_grad():
            for n in self.names:
                params[n].copy_(self.shadow[n].to(params[n].dtype))
        try:
            yield
        finally:
            with torch.no_grad():
                for n in self.names:
                    params[n].copy_(backup[n])

    def to(self, device: torch.device) -> None:
        self.shadow = {n: t.to(device) for n, t in self.shadow.items()}

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": dict(self.shadow)}

    def load_state_dict(self, state: dict) -> None:
        missing = set(self.names) - set(state["shadow"])
        if missing:
            raise ValueError(f"EMA state lacks {len(missing)} trainable tensors, e.g. {sorted(missing)[:5]}")
        self.num_updates = int(state["num_updates"])
        device = next(iter(self.shadow.values())).device if self.shadow else "cpu"
        self.shadow = {n: state["shadow"][n].float().to(device) for n in self.names}
