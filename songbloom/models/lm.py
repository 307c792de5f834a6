"""The causal Llama-style sketch LM, with an incremental decoding cache.

Parameter names match the release state dict (``ar_transformer.layers.{i}.self_attn.q_proj`` ...), which
was an HF ``LlamaModel`` without token embeddings. Attention runs on PyTorch SDPA.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from songbloom.models.layers import RMSNorm, RotaryEmbedding, SwiGLU, apply_rotary, parse_checkpointing, run_layers


class KVCache:
    """Preallocated key/value buffers for every layer, filled left to right.

    Args:
        num_layers: transformer depth.
        batch: rows decoded together (e.g. 2 for a CFG pair, 2*N for a batch of N songs).
        num_heads, head_dim: attention geometry.
        max_len: positions the cache can hold; writing past it raises.
    """

    def __init__(
        self,
        num_layers: int,
        batch: int,
        num_heads: int,
        head_dim: int,
        max_len: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        shape = (batch, num_heads, max_len, head_dim)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(num_layers)]
        self.values = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(num_layers)]
        self.max_len = max_len
        self.length = 0  # positions already written

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write new (B, H, T, D) keys/values at the current position; return everything written so far."""
        start, end = self.length, self.length + k.shape[2]
        if end > self.max_len:
            raise RuntimeError(f"KV cache full: {end} positions needed, capacity {self.max_len}; allocate more")
        self.keys[layer][:, :, start:end] = k
        self.values[layer][:, :, start:end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]


class LlamaAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.o_proj = nn.Linear(dim, dim, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        cache: KVCache | None = None,
        layer_idx: int = 0,
    ) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, D)
        k = self.k_proj(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        cos, sin = cos.to(q.dtype), sin.to(q.dtype)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        past = 0
        if cache is not None:
            past = cache.length
            k, v = cache.update(layer_idx, k, v)
        if past == 0:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=t > 1)
        elif t == 1:
            out = F.scaled_dot_product_attention(q, k, v)
        else:  # a chunk appended after cached positions: causal within the chunk, full over the past
            mask = torch.ones(t, past + t, dtype=torch.bool, device=x.device).tril(diagonal=past)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, dim: int, num_heads: int, ffn_dim: int, eps: float):
        super().__init__()
        self.self_attn = LlamaAttention(dim, num_heads)
        self.mlp = SwiGLU(dim, ffn_dim)
        self.input_layernorm = RMSNorm(dim, eps)
        self.post_attention_layernorm = RMSNorm(dim, eps)

    def forward(self, x, cos, sin, cache: KVCache | None = None, layer_idx: int = 0) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache, layer_idx)
        return x + self.mlp(self.post_attention_layernorm(x))


@dataclass
class LMGeometry:
    dim: int
    num_heads: int
    num_layers: int
    ffn_dim: int
    rope_base: float
    eps: float = 1e-6


class SketchLM(nn.Module):
    """Causal transformer over input embeddings; returns the final-norm hidden states.

    Positions are absolute from the start of the condition prefix. With a :class:`KVCache` the call
    continues from ``cache.length`` (incremental decoding); without one it runs the whole sequence.
    """

    def __init__(self, geom: LMGeometry):
        super().__init__()
        self.geom = geom
        self.layers = nn.ModuleList(
            LlamaDecoderLayer(geom.dim, geom.num_heads, geom.ffn_dim, geom.eps) for _ in range(geom.num_layers)
        )
        self.norm = RMSNorm(geom.dim, geom.eps)
        self.rotary = RotaryEmbedding(geom.dim // geom.num_heads, geom.rope_base)
        self.checkpoint_every = 0

    def set_gradient_checkpointing(self, mode: str | int | bool | None) -> None:
        """``'none'``, ``'full'`` or every k-th layer (always non-reentrant)."""
        self.checkpoint_every = parse_checkpointing(mode)

    def new_cache(self, batch: int, max_len: int, *, device=None, dtype=None) -> KVCache:
        p = self.norm.weight
        return KVCache(
            len(self.layers), batch, self.geom.num_heads, self.geom.dim // self.geom.num_heads, max_len,
            device=device or p.device, dtype=dtype or p.dtype,
        )

    def forward(self, inputs_embeds: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Args: inputs_embeds (B, T, dim). Returns (B, T, dim) after the final RMSNorm."""
        start = cache.length if cache is not None else 0
        positions = torch.arange(start, start + inputs_embeds.shape[1], device=inputs_embeds.device)
        cos, sin = self.rotary.cos_sin(positions)
        if cache is None:
            x = run_layers(self.layers, inputs_embeds, self.checkpoint_every, lambda layer, h: layer(h, cos, sin))
        else:
            x = inputs_embeds
            for i, layer in enumerate(self.layers):
                x = layer(x, cos, sin, cache, i)
            cache.length += inputs_embeds.shape[1]
        return self.norm(x)

    def flops_per_token(self, context: int) -> float:
        """Approximate forward FLOPs per token (matmuls + attention) at a given context length."""
        g = self.geom
        per_layer = 2 * (4 * g.dim * g.dim + 3 * g.dim * g.ffn_dim) + 4 * context * g.dim
        return per_layer * g.num_layers

