"""Held-out teacher-forced metrics: sketch CE / accuracy / perplexity and flow loss at fixed timesteps.

Training losses are noisy because every step draws new timesteps and noise. Here the timesteps are fixed
and the flow noise comes from a seeded generator (one stream per batch, keyed by its position in the
held-out list), so the same model on the same batches always gives the same numbers, two checkpoints are
compared on identical noise, and splitting the batches across ranks changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from songbloom.eval.registry import register_metric

DEFAULT_TIMESTEPS = (0.1, 0.3, 0.5, 0.7, 0.9)


@dataclass
class EvalBatch:
    """The fields the teacher-forced pass needs, whatever the batch came as."""

    sketch: torch.Tensor  # (B, T) long, EOS-padded
    latents: torch.Tensor  # (B, D, T)
    lengths: torch.Tensor  # (B,)
    lyric_ids: list[Any]
    prompt_latents: torch.Tensor | None
    prompt_lengths: torch.Tensor | None


_FIELD_NAMES = {  # EvalBatch field -> accepted names (datamodule collate first, then TrainingBatch)
    "sketch": ("x_sketch", "sketch"),
    "latents": ("x_latent", "latents"),
    "lengths": ("x_len", "lengths"),
    "lyric_ids": ("lyric_ids",),
    "prompt_latents": ("prompt_latent", "prompt_latents"),
    "prompt_lengths": ("prompt_len", "prompt_lengths"),
}


def as_eval_batch(batch: Any) -> EvalBatch:
    """Adapt a datamodule batch (``x_sketch``, ``x_latent``, ``x_len``, ``prompt_latent``, ``prompt_len``,
    ``lyric_ids``) or a training ``TrainingBatch`` (``sketch``, ``latents``, ...) — the one adapter to edit
    if a batch layout changes."""
    get: Callable[[str], Any]
    if isinstance(batch, Mapping):
        get = batch.get
    else:
        get = lambda key: getattr(batch, key, None)  # noqa: E731
    values: dict[str, Any] = {}
    for field, names in _FIELD_NAMES.items():
        values[field] = next((get(n) for n in names if get(n) is not None), None)
    missing = [f for f in ("sketch", "latents", "lengths", "lyric_ids") if values[f] is None]
    if missing:
        have = sorted(batch) if isinstance(batch, Mapping) else type(batch).__name__
        raise KeyError(f"evaluation batch lacks {missing} (accepted names: "
                       f"{[_FIELD_NAMES[m] for m in missing]}); got {have}")
    lyric = values["lyric_ids"]
    if isinstance(lyric, torch.Tensor) and lyric.dim() == 2:
        lens = get("lyric_len")
        lyric = [row[: int(lens[i])] if lens is not None else row for i, row in enumerate(lyric)]
    values["lyric_ids"] = [torch.as_tensor(ids, dtype=torch.long) for ids in lyric]
    return EvalBatch(**values)


def _to_blocks(batch: EvalBatch, block_size: int, eos_id: int) -> EvalBatch:
    """Pad T up to a whole number of blocks and round lengths down to whole blocks (the model's contract)."""
    t = batch.sketch.shape[1]
    pad = (-t) % block_size
    sketch, latents = batch.sketch, batch.latents
    if pad:
        sketch = F.pad(sketch, (0, pad), value=eos_id)
        latents = F.pad(latents, (0, pad))
    lengths = (batch.lengths // block_size) * block_size
    if bool((lengths == 0).any()):
        raise ValueError(f"an evaluation row is shorter than one block ({block_size} frames): lengths "
                         f"{batch.lengths.tolist()}; use longer held-out clips")
    sketch = torch.where(torch.arange(sketch.shape[1], device=sketch.device)[None] < lengths[:, None], sketch,
                         torch.full_like(sketch, eos_id))
    return EvalBatch(sketch, latents, lengths, batch.lyric_ids, batch.prompt_latents, batch.prompt_lengths)


@register_metric("teacher_forced")
class TeacherForcedMetrics:
    """AR loss, sketch accuracy and perplexity, and flow MSE at each of ``timesteps`` on held-out batches.

    ``update(model, batch)`` runs the model in eval mode under ``no_grad`` and restores its mode afterwards.
    Sums are kept as float64 tensors (:meth:`state`) so ranks can all-reduce them before :meth:`compute`.
    """

    name = "teacher_forced"

    def __init__(self, timesteps: Sequence[float] = DEFAULT_TIMESTEPS, *, seed: int = 0):
        if not timesteps or any(not 0.0 <= float(t) <= 1.0 for t in timesteps):
            raise ValueError(f"timesteps must be a non-empty list in [0, 1], got {list(timesteps)}")
        self.timesteps = tuple(float(t) for t in timesteps)
        self.seed = seed
        self.reset()

    def reset(self) -> None:
        # [ce_sum, correct, targets, flow_sum_t0, flow_count_t0, flow_sum_t1, ...]
        self._state = torch.zeros(3 + 2 * len(self.timesteps), dtype=torch.float64)
        self._batches = 0

    def state(self) -> torch.Tensor:
        return self._state

    def load_state(self, state: torch.Tensor) -> None:
        """Replace the sums (for instance with the all-reduced sums of every rank)."""
        self._state = state.detach().to("cpu", torch.float64).clone()

    @torch.no_grad()
    def update(self, model: nn.Module, batch: Any, batch_index: int | None = None) -> None:
        """Add one batch. ``batch_index`` (default: batches seen so far) picks its noise stream; pass the
        batch's position in the full held-out list when ranks split it, so noise does not depend on sharding."""
        cfg = model.cfg
        b = _to_blocks(as_eval_batch(batch), cfg.block_size, cfg.eos_id)
        device = next(model.parameters()).device
        sketch, latents, lengths = b.sketch.to(device), b.latents.to(device).float(), b.lengths.to(device)
        prompt = b.prompt_latents.to(device).float() if b.prompt_latents is not None else None
        prompt_len = b.prompt_lengths.to(device) if b.prompt_lengths is not None else None
        lyric = [ids.to(device) for ids in b.lyric_ids]
        padded = prompt.shape[-1] if prompt is not None else None
        n_patches = int((lengths // cfg.block_size).sum())
        index = self._batches if batch_index is None else int(batch_index)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        noise = torch.randn((n_patches, cfg.block_size, cfg.latent_dim), generator=gen).to(device)
        was_training = model.training
        model.eval()
        try:
            conditions = model.encode_conditions(lyric, prompt, prompt_len, padded)
            for k, t_value in enumerate(self.timesteps):
                t = torch.full((n_patches,), t_value, device=device)
                out = model(sketch, latents, lengths, conditions, noise=noise, t=t)
                if k == 0:
                    self._add_ar(out.ar_logit.float(), out.ar_target, model.special_id)
                per_patch = (out.nar_pred.float() - out.nar_target.float()).pow(2).mean(dim=(1, 2))
                self._state[3 + 2 * k] += float(per_patch.double().sum())
                self._state[4 + 2 * k] += per_patch.numel()
        finally:
            model.train(was_training)
        self._batches += 1

    def _add_ar(self, logits: torch.Tensor, target: torch.Tensor, ignore_id: int) -> None:
        valid = target != ignore_id
        ce = F.cross_entropy(logits[valid], target[valid], reduction="sum")
        self._state[0] += float(ce.double())
        self._state[1] += float((logits[valid].argmax(-1) == target[valid]).sum())
        self._state[2] += float(valid.sum())

    def compute(self) -> dict[str, float]:
        s = self._state
        if s[2] == 0:
            raise ValueError("teacher-forced metrics: no batches (or no sketch targets) were evaluated")
        ar = float(s[0] / s[2])
        result = {"ar_loss": ar, "sketch_accuracy": float(s[1] / s[2]),
                  "sketch_perplexity": math.exp(min(ar, 700.0)), "sketch_targets": float(s[2])}
        flows = []
        for k, t in enumerate(self.timesteps):
            value = float(s[3 + 2 * k] / max(float(s[4 + 2 * k]), 1.0))
            result[f"flow_loss_t{t:.2f}"] = value
            flows.append(value)
        result["flow_loss"] = sum(flows) / len(flows)
        return result
