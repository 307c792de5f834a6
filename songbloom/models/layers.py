"""Small layers shared by the sketch LM and the DiT: norms, rotary embeddings, SwiGLU, checkpointing."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import CheckpointPolicy, checkpoint, create_selective_checkpoint_contexts

SELECTIVE = -1
"""Checkpointing mode: keep matmul and attention outputs, recompute only cheap element-wise ops."""

_SAVE_OPS = {
    op
    for name in (
        "mm", "addmm", "bmm", "linear",
        "_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention",
        "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_cudnn_attention",
    )
    if (op := getattr(getattr(torch.ops.aten, name, None), "default", None)) is not None
}


def _selective_policy(ctx, op, *args, **kwargs) -> CheckpointPolicy:
    return CheckpointPolicy.MUST_SAVE if op in _SAVE_OPS else CheckpointPolicy.PREFER_RECOMPUTE


class RMSNorm(nn.Module):
    """Llama RMSNorm: statistics in float32, gain applied in the input dtype (as HF Llama does)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(dtype)


class LayerNormWithBeta(nn.Module):
    """LayerNorm with a learnable gain and a *persistent buffer* bias.

    The release DiT stores ``beta`` in the state dict although it is not trained; loading must read it
    (docs/design/fidelity.md#dit-layernorm-beta), so it is a buffer, not a constant zero.
    """

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))
        self.register_buffer("beta", torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], self.gamma, self.beta, self.eps)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """Rotate-half convention: (x1, x2) -> (-x2, x1) over the two halves of the last dim."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding over the first ``rot_dim`` dims of each head (rotate-half convention).

    ``inv_freq`` is a non-persistent buffer, so casting the module (e.g. to bf16) rounds it exactly as
    the release does; angles are always evaluated in float32.
    """

    def __init__(self, rot_dim: int, base: float):
        super().__init__()
        if rot_dim % 2:
            raise ValueError(f"rotary dim must be even, got {rot_dim}")
        self.rot_dim = rot_dim
        self.base = float(base)
        inv_freq = 1.0 / (self.base ** (torch.arange(0, rot_dim, 2, dtype=torch.int64).float() / rot_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def cos_sin(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return float32 (cos, sin) of shape (len(positions), rot_dim) for integer positions."""
        freqs = positions.float()[:, None] * self.inv_freq.float()[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the first ``cos.shape[-1]`` dims of ``x`` (B, H, T, D); the rest pass through."""
    rot = cos.shape[-1]
    if rot == x.shape[-1]:
        return x * cos + rotate_half(x) * sin
    x_rot, x_pass = x[..., :rot], x[..., rot:]
    return torch.cat((x_rot * cos + rotate_half(x_rot) * sin, x_pass), dim=-1)


class SwiGLU(nn.Module):
    """The sketch LM's MLP: ``down(silu(gate(x)) * up(x))``, bias-free (HF LlamaMLP names)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=False)
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


def parse_checkpointing(mode: str | int | bool | None) -> int:
    """Normalise a gradient-checkpointing setting to 'every k-th layer' (0 = off, 1 = every layer).

    Accepts ``"none"``/``"off"``/``False``/``0``, ``"full"``/``True``/``1``, an integer k > 1, or
    ``"selective"`` (every layer, but matmul/attention outputs are kept and only element-wise ops such as
    norms, SiLU and RoPE are recomputed: most of the activation memory of the SwiGLU/norm intermediates
    is saved for a few percent of extra compute). Returns :data:`SELECTIVE` for the latter.
    """
    if mode is None or mode is False:
        return 0
    if mode is True:
        return 1
    if isinstance(mode, str):
        key = mode.strip().lower()
        if key in ("none", "off", "false", "0", ""):
            return 0
        if key in ("full", "on", "true", "all"):
            return 1
        if key == "selective":
            return SELECTIVE
        if key.isdigit():
            return int(key)
        raise ValueError(
            f"gradient checkpointing {mode!r}: use 'none', 'full', 'selective' or an integer k (every k-th layer)"
        )
    k = int(mode)
    if k == SELECTIVE:
        return k
    if k < 0:
        raise ValueError(f"gradient checkpointing every k-th layer needs k >= 0, got {k}")
    return k


def run_layers(
    layers: Sequence[nn.Module],
    x: torch.Tensor,
    every_k: int,
    fn: Callable[[nn.Module, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Apply ``fn(layer, x)`` over layers, checkpointing every k-th one when training with grad enabled.

    Checkpointing is always non-reentrant: the reentrant variant drops gradients when the block's
    inputs do not require grad (frozen base + LoRA adapters), which is how the public fork's LoRA never
    trained the AR stage.
    """
    use_ckpt = every_k != 0 and torch.is_grad_enabled()
    context_fn = functools.partial(create_selective_checkpoint_contexts, _selective_policy)
    for i, layer in enumerate(layers):
        if use_ckpt and every_k == SELECTIVE:
            x = checkpoint(fn, layer, x, use_reentrant=False, context_fn=context_fn)
        elif use_ckpt and i % every_k == 0:
            x = checkpoint(fn, layer, x, use_reentrant=False)
        else:
            x = fn(layer, x)
    return x
