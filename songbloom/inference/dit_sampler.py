"""The patch DiT sampler: Euler over rectified flow with the release's temperature trick, and DiT CFG.

The release (``sample_discrete_euler_with_temperature`` + ``MVSA_DiTAR.diffusion_forward``) rebuilds the
whole DiT input at every step. Here the pieces that do not change during a patch (``h``, the sketch
embeddings, ``project_in(previous patch)``) are computed once per patch, the timestep embeddings of the
fixed time grid once per song, the CFG rows run as one batch, the first DiT block's q/k/v of the fixed
tokens are computed once per patch (see :class:`PatchDenoiser`), the rotary table once, and the last DiT
layer only computes the ``block_size`` positions whose outputs are used (keys and values still cover every
position). The maths is the release's; only float rounding of the reordered matmuls can differ (~1e-7 in
fp32; 0 on the CPU in practice).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from songbloom.models.layers import apply_rotary
from songbloom.models.songbloom import SongBloomModel

DIT_CFG_MODES = ("h", "global", "none")

StepObserver = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], None]


def time_grid(steps: int) -> torch.Tensor:
    """``linspace(1, 0, steps + 1)`` in float32 on the CPU, as the release builds it (t=1 is noise)."""
    return torch.linspace(1.0, 0.0, steps + 1)


def euler_sample(
    velocity: Callable[[torch.Tensor, int, torch.Tensor], torch.Tensor],
    noise: torch.Tensor,
    steps: int,
    temperature: float = 1.0,
    on_step: StepObserver | None = None,
) -> torch.Tensor:
    """Integrate from t=1 to t=0 with the release's temperature trick.

    With ``temperature < 1`` the state starts at zeros; at the step crossing ``temperature`` the data
    estimate ``x - v`` is re-noised with ``noise`` to the next time; every other step is plain Euler.
    With ``temperature >= 1`` it is plain Euler from ``noise``. ``velocity(x, step, t)`` gets the step
    index (for precomputed timestep embeddings) and the (rows,) time vector in the state's dtype.
    """
    t = time_grid(steps)
    x = noise if temperature >= 1.0 else torch.zeros_like(noise)
    for i in range(steps):
        t_curr, t_next = t[i], t[i + 1]
        t_vec = t_curr * torch.ones((x.shape[0],), dtype=x.dtype, device=x.device)
        v = velocity(x, i, t_vec)
        if on_step is not None:
            on_step(i, x, t_vec, v)
        if t_curr > temperature and t_next <= temperature:
            x0 = x - v
            x = (1 - t_next) * x0 + t_next * noise
        else:
            x = x + (t_next - t_curr) * v
    return x


def _split_heads(z: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, T, H*D) head-major -> (B, H, T, D)."""
    b, t, _ = z.shape
    return z.view(b, t, num_heads, -1).transpose(1, 2)


def _rotate(z: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """The release rotates in float32 and casts back (docs/design/fidelity.md#rope-float32)."""
    return apply_rotary(z.float(), cos, sin).to(z.dtype)


def _qkv(layer: nn.Module, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, keep: int | None = None):
    """Rotated q, k, v (B, H, T, D) of one DiT block; with ``keep`` only the last ``keep`` queries."""
    attn = layer.self_attn
    xn = layer.pre_norm(x)
    if keep is None:
        q, k, v = attn.to_qkv(xn).chunk(3, dim=-1)
        qcos, qsin = cos, sin
    else:
        d = x.shape[-1]
        if isinstance(attn.to_qkv, nn.Linear):
            w = attn.to_qkv.weight
            q = F.linear(xn[:, -keep:], w[:d])
            k, v = F.linear(xn, w[d:]).chunk(2, dim=-1)
        else:  # a wrapped projection (an unmerged LoRA adapter): its weight alone is not the layer
            qkv = attn.to_qkv(xn)
            q = qkv[:, -keep:, :d]
            k, v = qkv[..., d:].chunk(2, dim=-1)
        qcos, qsin = cos[-keep:], sin[-keep:]
    h = attn.num_heads
    return _rotate(_split_heads(q, h), qcos, qsin), _rotate(_split_heads(k, h), cos, sin), _split_heads(v, h)


def _attend_and_ff(layer: nn.Module, x: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
    """The rest of a DiT block after q/k/v: attention, output projection, residuals and the SwiGLU FFN.

    Only the positions of ``q`` are computed (the last ``q.shape[2]`` of ``x``). The FFN runs in place on its
    own temporaries; ``silu(g) * u`` equals the release's ``u * silu(g)`` exactly.
    """
    b, keep, d = x.shape[0], q.shape[2], x.shape[-1]
    out = F.scaled_dot_product_attention(q, k, v)
    y = layer.self_attn.to_out(out.transpose(1, 2).reshape(b, keep, d))
    y += x[:, -keep:]
    gated = layer.ff.ff[0]
    yn = layer.ff_norm(y)
    g = F.silu(gated.gate_proj(yn), inplace=True)
    g *= gated.up_proj(yn)
    y += layer.ff.ff[2](g)
    return y


class PatchDenoiser:
    """Guided velocity of one latent patch per song, for :func:`euler_sample`.

    Row layout of the Euler state: ``n`` rows for ``h`` and ``none``; ``2n`` rows ``[cond..., null...]``
    for ``global`` (each half starts from the same noise, the final latents are mixed afterwards).

    Work that does not change within a patch is done once: the DiT sequence is ``[t, h, s, prev, x]`` and
    only ``t`` (per step) and ``x`` change, so the first block's normed q/k/v of ``h, s, prev`` are computed
    in :meth:`prepare`, those of the ``t`` token once per step index for the whole song, and those of ``x``
    once for both CFG rows of a song (they see the same ``x``). Every value is the one the full forward
    computes, row by row; only the float rounding of differently shaped matmuls can differ.
    """

    def __init__(self, model: SongBloomModel, steps: int, mode: str = "h", cfg_coef: float | None = 1.5):
        if mode not in DIT_CFG_MODES:
            raise ValueError(f"dit_cfg_type {mode!r}: choose from {DIT_CFG_MODES}")
        self.model = model
        self.mode = mode
        self.cfg_coef = cfg_coef
        self.steps = steps
        dtype = model.project_in.weight.dtype
        device = model.project_in.weight.device
        grid = time_grid(steps)[:-1]
        # Rows of one step share t, so one embedding per grid point serves every row and patch.
        self.temb = torch.cat(
            [model.timestep_embedding(t * torch.ones((1,), dtype=dtype, device=device)) for t in grid]
        ).to(dtype)  # (steps, dim)
        dit = model.nar_dit
        seq_len = 2 + 3 * model.cfg.block_size  # [t, h, s (P), prev (P), x (P)]
        self.cos, self.sin = dit.rotary.cos_sin(torch.arange(seq_len, device=device))
        first = dit.layers[0]
        q, k, v = _qkv(first, self.temb[:, None], self.cos[:1], self.sin[:1])
        self.temb_qkv = (q, k, v)  # (steps, H, 1, D) each: first-block q/k/v of the t token
        self.const: torch.Tensor | None = None
        self.const_qkv: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    @property
    def guided(self) -> bool:
        return self.mode == "h" and self.cfg_coef is not None

    def prepare(self, h: torch.Tensor, s: torch.Tensor, prev: torch.Tensor) -> None:
        """Fix the patch conditions.

        Args:
            h: (n, dim) conditional hidden vectors, or (2n, dim) ``[cond, null]`` for ``global``.
            s: (n, P, dim) sketch embeddings of the patch.
            prev: (n, P, latent_dim) clean previous patch (zeros for the first).
        """
        m = self.model
        prev_in = m.project_in(prev)
        if self.guided:  # release 'h' CFG: the null row has h and s zeroed, same history and x
            h = torch.cat([h, torch.zeros_like(h)])
            s = torch.cat([s, torch.zeros_like(s)])
            prev_in = torch.cat([prev_in, prev_in])
        elif self.mode == "global":
            s = torch.cat([s, s])
            prev_in = torch.cat([prev_in, prev_in])
        self.const = torch.cat([h[:, None].to(s.dtype), s, prev_in], dim=1)
        span = slice(1, 1 + self.const.shape[1])
        self.const_qkv = _qkv(m.nar_dit.layers[0], self.const, self.cos[span], self.sin[span])

    def __call__(self, x: torch.Tensor, step: int, t: torch.Tensor) -> torch.Tensor:
        assert self.const is not None and self.const_qkv is not None, "call prepare() first"
        m = self.model
        layers = m.nar_dit.layers
        keep = x.shape[1]
        rows = self.const.shape[0]
        x_in = m.project_in(x)  # one copy per song; the CFG rows repeat it
        xs = slice(-keep, None)
        last_only = len(layers) == 1
        q_x, k_x, v_x = _qkv(layers[0], x_in, self.cos[xs], self.sin[xs])
        if rows != x.shape[0]:
            q_x, k_x, v_x, x_in = (torch.cat([z, z]) for z in (q_x, k_x, v_x, x_in))
        parts = [
            torch.cat([z[step : step + 1].expand(rows, -1, -1, -1), c, zx], dim=2)
            for z, c, zx in zip(self.temb_qkv, self.const_qkv, (q_x, k_x, v_x), strict=True)
        ]
        q, k, v = parts
        temb = self.temb[step].expand(rows, 1, -1)
        seq = torch.cat([temb, self.const, x_in], dim=1)
        if last_only:
            q = q[:, :, -keep:]
        seq = _attend_and_ff(layers[0], seq, q, k, v)
        for i in range(1, len(layers)):
            tail = keep if i == len(layers) - 1 else None
            q, k, v = _qkv(layers[i], seq, self.cos, self.sin, tail)
            seq = _attend_and_ff(layers[i], seq, q, k, v)
        v = m.project_out(seq)
        if self.guided:
            cond, uncond = v.chunk(2)
            v = uncond + (cond - uncond) * self.cfg_coef
        return v

    def sample(
        self,
        noise: torch.Tensor,
        h: torch.Tensor,
        s: torch.Tensor,
        prev: torch.Tensor,
        temperature: float,
        on_step: StepObserver | None = None,
    ) -> torch.Tensor:
        """Sample one patch per song: noise (n, P, C) -> clean latents (n, P, C)."""
        if self.mode == "global":
            noise = torch.cat([noise, noise])
        self.prepare(h, s, prev)
        out = euler_sample(self, noise, self.steps, temperature, on_step)
        if self.mode == "global":
            cond, uncond = out.chunk(2)
            coef = 1.0 if self.cfg_coef is None else self.cfg_coef
            out = uncond + (cond - uncond) * coef
        return out
