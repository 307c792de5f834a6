"""The bidirectional diffusion transformer (DiT) that refines one latent patch at a time.

Release-compatible names: ``nar_dit.layers.{i}.{pre_norm,self_attn.to_qkv,self_attn.to_out,ff_norm,
ff.ff.0.up_proj,ff.ff.0.gate_proj,ff.ff.2}``. Pre-norm blocks, bias-free LayerNorm whose beta is a
loaded buffer, fused head-major q|k|v, partial RoPE (first ``max(head_dim // 2, 32)`` dims of each head,
base 20000 regardless of the LM base), SwiGLU FFN, no final norm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from songbloom.models.layers import LayerNormWithBeta, RotaryEmbedding, apply_rotary, parse_checkpointing, run_layers


class DiTAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.to_qkv = nn.Linear(dim, dim * 3, bias=False)
        self.to_out = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = self.to_qkv(x).chunk(3, dim=-1)  # q | k | v, each head-major (h d)
        q, k, v = (z.view(b, t, self.num_heads, self.head_dim).transpose(1, 2) for z in (q, k, v))
        dtype = q.dtype
        # The release rotates in float32 and casts back (docs/design/fidelity.md#rope-float32).
        q = apply_rotary(q.float(), cos, sin).to(dtype)
        k = apply_rotary(k.float(), cos, sin).to(dtype)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).reshape(b, t, -1))


class DiTGatedUp(nn.Module):
    """``up_proj(x) * silu(gate_proj(x))`` (the first stage of the DiT FFN, key ``ff.ff.0``)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.gate_proj = nn.Linear(dim, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up_proj(x) * F.silu(self.gate_proj(x))


class DiTFeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.ff = nn.Sequential(DiTGatedUp(dim, hidden), nn.Identity(), nn.Linear(hidden, dim, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ff(x)


class DiTBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, ffn_dim: int):
        super().__init__()
        self.pre_norm = LayerNormWithBeta(dim)
        self.self_attn = DiTAttention(dim, num_heads)
        self.ff_norm = LayerNormWithBeta(dim)
        self.ff = DiTFeedForward(dim, ffn_dim)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.pre_norm(x), cos, sin)
        return x + self.ff(self.ff_norm(x))


class DiT(nn.Module):
    """Stack of :class:`DiTBlock`; input and output are (B, T, dim) token sequences."""

    def __init__(self, dim: int, num_heads: int, depth: int, ffn_dim: int, rope_base: float = 20000.0):
        super().__init__()
        head_dim = dim // num_heads
        rot_dim = max(head_dim // 2, 32)
        if rot_dim > head_dim:
            raise ValueError(f"DiT head dim {head_dim} < 32: the release rotary covers max(head_dim // 2, 32) dims")
        self.layers = nn.ModuleList(DiTBlock(dim, num_heads, ffn_dim) for _ in range(depth))
        self.rotary = RotaryEmbedding(rot_dim, rope_base)
        self.checkpoint_every = 0

    def set_gradient_checkpointing(self, mode: str | int | bool | None) -> None:
        self.checkpoint_every = parse_checkpointing(mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cos, sin = self.rotary.cos_sin(torch.arange(x.shape[1], device=x.device))
        return run_layers(self.layers, x, self.checkpoint_every, lambda layer, h: layer(h, cos, sin))
