"""The patch DiT sampler: Euler over rectified flow with the release's temperature trick, and DiT CFG.

The release (``sample_discrete_euler_with_temperature`` + ``MVSA_DiTAR.diffusion_forward``) rebuilds the
whole DiT input at every step. Here the pieces that do not change during a patch (``h``, the sketch
embeddings, ``project_in(previous patch)``) are computed once per patch, the timestep embeddings of the
fixed time grid once per song, the CFG rows run as one batch, and the last DiT layer only computes the
``block_size`` positions whose outputs are used (keys and values still cover every position). The maths
is the release's; only float rounding of the reordered matmuls can differ (~1e-7 in fp32).
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


def _dit_forward_tail(model: SongBloomModel, seq: torch.Tensor, keep: int) -> torch.Tensor:
    """Run the DiT and return only the last ``keep`` positions; the last layer skips the other queries."""
    dit = model.nar_dit
    cos, sin = dit.rotary.cos_sin(torch.arange(seq.shape[1], device=seq.device))
    x = seq
    for layer in dit.layers[:-1]:
        x = layer(x, cos, sin)
    last = dit.layers[-1]
    attn = last.self_attn
    b, t, d = x.shape
    xn = last.pre_norm(x)
    if isinstance(attn.to_qkv, nn.Linear):
        w = attn.to_qkv.weight
        q = F.linear(xn[:, -keep:], w[:d])
        k, v = F.linear(xn, w[d:]).chunk(2, dim=-1)
    else:  # a wrapped projection (an unmerged LoRA adapter): its weight alone is not the layer
        qkv = attn.to_qkv(xn)
        q = qkv[:, -keep:, :d]
        k, v = qkv[..., d:].chunk(2, dim=-1)
    q = q.view(b, keep, attn.num_heads, attn.head_dim).transpose(1, 2)
    k = k.view(b, t, attn.num_heads, attn.head_dim).transpose(1, 2)
    v = v.view(b, t, attn.num_heads, attn.head_dim).transpose(1, 2)
    dtype = q.dtype
    q = apply_rotary(q.float(), cos[-keep:], sin[-keep:]).to(dtype)
    k = apply_rotary(k.float(), cos, sin).to(dtype)
    out = F.scaled_dot_product_attention(q, k, v)
    y = x[:, -keep:] + attn.to_out(out.transpose(1, 2).reshape(b, keep, d))
    return y + last.ff(last.ff_norm(y))


class PatchDenoiser:
    """Guided velocity of one latent patch per song, for :func:`euler_sample`.

    Row layout of the Euler state: ``n`` rows for ``h`` and ``none``; ``2n`` rows ``[cond..., null...]``
    for ``global`` (each half starts from the same noise, the final latents are mixed afterwards).
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
        self.const: torch.Tensor | None = None

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

    def __call__(self, x: torch.Tensor, step: int, t: torch.Tensor) -> torch.Tensor:
        assert self.const is not None, "call prepare() first"
        m = self.model
        x_in = torch.cat([x, x]) if self.guided else x
        rows = x_in.shape[0]
        temb = self.temb[step].expand(rows, 1, -1)
        seq = torch.cat([temb, self.const, m.project_in(x_in)], dim=1)
        v = m.project_out(_dit_forward_tail(m, seq, x.shape[1]))
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
