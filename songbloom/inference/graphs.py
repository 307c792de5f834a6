"""Static-shape versions of the two hot loops, so CUDA graphs can replay them (GPU only, optional).

On a GPU the eager sampler is bound by kernel launches: one LM step of the 36-layer model issues ~1500
small kernels, and one patch of the DiT ~10,000. Here:

* :class:`StaticDecodeStep` is the one-token LM step with the position held in a device tensor: the
  rotary angles come from a table, keys/values are written with ``index_copy_``, and attention runs over a
  fixed-length window of the cache with a length mask. Same maths as ``SketchLM.forward`` with a cache
  (tested against it on the CPU).
* :class:`GraphCache` captures a function once per shape key and replays it afterwards.

Any failure to capture falls back to eager execution with a warning; the results do not depend on it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
import torch.nn.functional as F

from songbloom.models.layers import apply_rotary
from songbloom.models.lm import KVCache
from songbloom.models.songbloom import SongBloomModel

logger = logging.getLogger(__name__)


class StaticDecodeStep:
    """One LM step for one new token per row, using tensor positions (no Python ints in the maths)."""

    def __init__(self, model: SongBloomModel, max_len: int, bucket: int = 256):
        self.model = model
        self.lm = model.ar_transformer
        self.bucket = bucket
        device = self.lm.norm.weight.device
        cos, sin = self.lm.rotary.cos_sin(torch.arange(max_len, device=device))
        self.cos_table, self.sin_table = cos, sin  # float32 (max_len, head_dim)

    def window(self, position: int, max_len: int) -> int:
        """Cache positions attended for a token at ``position`` (a multiple of ``bucket``, capped)."""
        return min(max_len, (position // self.bucket + 1) * self.bucket)

    def __call__(
        self, x: torch.Tensor, pos: torch.Tensor, cache: KVCache, window: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, 1, dim), pos (1,) long on the device -> (hidden (B, dim), logits (B, V)); writes the cache at pos."""
        cos = self.cos_table.index_select(0, pos)
        sin = self.sin_table.index_select(0, pos)
        mask = (torch.arange(window, device=x.device) <= pos)[None]  # (1, window): True where attended
        b = x.shape[0]
        for i, layer in enumerate(self.lm.layers):
            attn = layer.self_attn
            h = layer.input_layernorm(x)
            q = attn.q_proj(h).view(b, 1, attn.num_heads, attn.head_dim).transpose(1, 2)
            k = attn.k_proj(h).view(b, 1, attn.num_heads, attn.head_dim).transpose(1, 2)
            v = attn.v_proj(h).view(b, 1, attn.num_heads, attn.head_dim).transpose(1, 2)
            c, s = cos.to(q.dtype), sin.to(q.dtype)
            q, k = apply_rotary(q, c, s), apply_rotary(k, c, s)
            cache.keys[i].index_copy_(2, pos, k)
            cache.values[i].index_copy_(2, pos, v)
            keys = cache.keys[i][:, :, :window]
            values = cache.values[i][:, :, :window]
            out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
            x = x + attn.o_proj(out.transpose(1, 2).reshape(b, 1, -1))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        hidden = self.lm.norm(x)[:, -1]
        return hidden, self.model.classify(hidden)


class GraphCache:
    """Capture ``fn`` per key on first use, replay it afterwards; static inputs are copied in by the caller.

    ``build(key)`` returns (fn, static inputs); the graph records ``fn()`` on those inputs. If capture
    fails (driver, unsupported op), the key is marked eager and ``fn`` runs directly from then on.
    """

    def __init__(self) -> None:
        self.graphs: dict[object, tuple[torch.cuda.CUDAGraph | None, Callable[[], object], object]] = {}
        self.pool = None
        self.failed = False

    def clear(self) -> None:
        self.graphs.clear()

    def run(self, key: object, fn: Callable[[], object]) -> object:
        entry = self.graphs.get(key)
        if entry is not None:
            graph, _, out = entry
            if graph is None:
                return fn()
            graph.replay()
            return out
        if self.failed:
            return fn()
        try:
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                fn()  # warm-up outside the graph (allocator, lazy kernel init)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            if self.pool is None:
                self.pool = torch.cuda.graph_pool_handle()
            with torch.cuda.graph(graph, pool=self.pool):
                out = fn()
            self.graphs[key] = (graph, fn, out)
            graph.replay()
            return out
        except Exception as e:  # pragma: no cover - GPU only
            logger.warning("CUDA graph capture failed (%s); running eagerly from now on", e)
            self.failed = True
            torch.cuda.synchronize()
            return fn()
