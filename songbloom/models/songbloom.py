"""The interleaved SongBloom generator (release ``MVSA_DiTAR``): sketch LM + patch DiT.

Stream layout per song with N patches of ``block_size`` (P) frames::

    [prefix | BOS, s_1..s_P, A_1, s_P+1..s_2P, A_2, ..., A_N]

``s`` are sketch-token embeddings and ``A_j`` is the acoustic summary of ground-truth patch j
(``block_conv``). The LM output at each patch's last sketch position is the hidden vector ``h_j`` that
conditions the DiT; every other position predicts the next sketch token (the final ``A_N`` predicts EOS).
The DiT sees ``[t-embedding, h_j, s_j (P), project_in(patch j-1) (P), project_in(x_t) (P)]`` and predicts
the velocity of patch j from its last P outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from songbloom.config import ModelConfig
from songbloom.models.conditioners import (
    NULL_LYRIC,
    ConditionProvider,
    ConditionTensors,
    LyricConditioner,
    PromptConditioner,
)
from songbloom.models.dit import DiT
from songbloom.models.lm import LMGeometry, SketchLM


class FourierFeatures(nn.Module):
    """``[cos(2 pi t W), sin(2 pi t W)]`` with a learnable W initialised N(0, 1)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        if out_features % 2:
            raise ValueError(f"timestep feature dim must be even, got {out_features}")
        self.weight = nn.Parameter(torch.randn(out_features // 2, in_features))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        f = 2 * math.pi * t @ self.weight.T
        return torch.cat([f.cos(), f.sin()], dim=-1)


class PatchFlatten(nn.Module):
    """(B, C, N*P) latents -> (B, N, P*C) patches, flattened in (time, channel) order."""

    def __init__(self, block_size: int):
        super().__init__()
        self.block_size = block_size

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        b, c, t = latents.shape
        return latents.transpose(1, 2).reshape(b, t // self.block_size, self.block_size * c)


@dataclass
class ForwardOutput:
    """Teacher-forced outputs (release ``DiTAROutput``)."""

    ar_logit: torch.Tensor  # (B, P*N + 1, num_pitch + 1)
    ar_target: torch.Tensor  # (B, P*N + 1) with EOS at x_len and the special (ignore) id after it
    nar_pred: torch.Tensor  # (n_patches, P, latent_dim), valid patches of all rows in row order
    nar_target: torch.Tensor  # (n_patches, P, latent_dim)
    nar_t: torch.Tensor  # (n_patches,)
    hidden: torch.Tensor | None = None  # (B, prefix + 1 + (P+1)N, dim) LM output, when requested


class SongBloomModel(nn.Module):
    """The generator. Plain ``nn.Module``: no optimizer, loss or logging lives here."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d, p = cfg.dim, cfg.block_size
        self.skeleton_emb = nn.Embedding(cfg.num_pitch + 2, d)  # codes, EOS, special (ignore) id
        self.bos_token = nn.Parameter(torch.randn(d) * cfg.init_std)
        self.ar_transformer = SketchLM(
            LMGeometry(d, cfg.num_heads, cfg.lm_layers, cfg.ffn_dim, cfg.rotary_base_val, cfg.rms_norm_eps)
        )
        self.skeleton_classifier = nn.Sequential(
            nn.Linear(d, d, bias=False), nn.SiLU(), nn.Linear(d, cfg.num_pitch + 1)
        )
        self.block_conv = nn.Sequential(
            PatchFlatten(p), nn.Linear(p * cfg.latent_dim, d), nn.SiLU(), nn.Linear(d, d)
        )
        self.project_in = nn.Linear(cfg.latent_dim, d)
        self.project_out = nn.Linear(d, cfg.latent_dim)
        self.timestep_features = FourierFeatures(1, cfg.timestep_features_dim)
        self.to_timestep_embed = nn.Sequential(
            nn.Linear(cfg.timestep_features_dim, d, bias=False), nn.SiLU(), nn.Linear(d, d)
        )
        self.nar_dit = DiT(d, cfg.num_heads, cfg.diff_layers, cfg.ffn_dim, cfg.dit_rotary_base)
        self.condition_provider = ConditionProvider(
            LyricConditioner(cfg.lyric_vocab, d, cfg.lyric_max_len, cfg.lyric_max_sentences),
            PromptConditioner(cfg.latent_dim, d, cfg.prompt_max_len),
        )
        self.sobol = torch.quasirandom.SobolEngine(1, scramble=True) if cfg.timestep_sampler == "uniform" else None
        self.reset_parameters()

    # ------------------------------------------------------------------ init and knobs
    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Release init: every Linear/Embedding N(0, init_std), biases and embedding padding rows zero."""
        std = self.cfg.init_std
        for m in self.modules():
            if isinstance(m, nn.Linear):
                m.weight.normal_(0.0, std)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.Embedding):
                m.weight.normal_(0.0, std)
                if m.padding_idx is not None:
                    m.weight[m.padding_idx].zero_()

    def set_gradient_checkpointing(self, lm: str | int | bool | None = "full", dit: str | int | bool | None = None):
        """Checkpoint the LM and DiT blocks (``'none'``, ``'full'`` or every k-th layer; non-reentrant)."""
        self.ar_transformer.set_gradient_checkpointing(lm)
        self.nar_dit.set_gradient_checkpointing(lm if dit is None else dit)

    @property
    def eos_id(self) -> int:
        return self.cfg.eos_id

    @property
    def special_id(self) -> int:
        return self.cfg.special_id

    # ------------------------------------------------------------------ conditions
    def encode_conditions(
        self,
        lyric_ids: list[list[int] | torch.Tensor | None],
        prompt_latents: torch.Tensor | None,
        prompt_lengths: torch.Tensor | None = None,
        prompt_padded_length: int | float | None = None,
    ) -> ConditionTensors:
        """Encode lyrics and prompt latents into the prefix tensors.

        Args:
            lyric_ids: per row, lyric vocabulary ids; ``None`` gives the null lyric (one id-0 token).
            prompt_latents: (B, latent_dim, F) prompt latents, or ``None`` for an all-null batch.
            prompt_lengths / prompt_padded_length: see :class:`PromptConditioner` (``None`` = full rows).
        """
        b = len(lyric_ids)
        lyr = [NULL_LYRIC if ids is None else ids for ids in lyric_ids]
        lyr_emb, lyr_mask = self.condition_provider.lyrics(lyr)
        if prompt_latents is None:
            prompt_latents = lyr_emb.new_zeros(b, self.cfg.latent_dim, 0)
            prompt_lengths = torch.zeros(b, device=lyr_emb.device)
            prompt_padded_length = 1
        pr_emb, pr_mask = self.condition_provider.prompt(prompt_latents, prompt_lengths, prompt_padded_length)
        return ConditionTensors(prompt=pr_emb, prompt_mask=pr_mask, lyrics=lyr_emb, lyrics_mask=lyr_mask)

    # ------------------------------------------------------------------ building blocks (shared with the sampler)
    def embed_sketch(self, ids: torch.Tensor) -> torch.Tensor:
        return self.skeleton_emb(ids)

    def acoustic_tokens(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, C, N*P) latents -> (B, N, dim) acoustic summary tokens A_j."""
        return self.block_conv(latents)

    def classify(self, hidden: torch.Tensor) -> torch.Tensor:
        """LM hidden states -> sketch logits over ``num_pitch`` codes + EOS."""
        return self.skeleton_classifier(hidden)

    def timestep_embedding(self, t: torch.Tensor) -> torch.Tensor:
        """(n,) flow times -> (n, dim)."""
        return self.to_timestep_embed(self.timestep_features(t[:, None].to(self.timestep_features.weight.dtype)))

    def dit_velocity(
        self, x_t: torch.Tensor, t: torch.Tensor, h: torch.Tensor, s: torch.Tensor, prev: torch.Tensor
    ) -> torch.Tensor:
        """Predict the velocity of one patch per row.

        Args: x_t (n, P, C) noisy patch; t (n,); h (n, dim); s (n, P, dim) sketch embeddings; prev (n, P, C)
        clean previous patch. Returns (n, P, C).
        """
        temb = self.timestep_embedding(t)[:, None]
        seq = torch.cat([temb.to(h.dtype), h[:, None], s, self.project_in(prev), self.project_in(x_t)], dim=1)
        out = self.nar_dit(seq)
        return self.project_out(out[:, -x_t.shape[1] :])

    def build_stream(self, x_sketch: torch.Tensor, x_latent: torch.Tensor) -> torch.Tensor:
        """[BOS, s_1..s_P, A_1, ..., A_N] as (B, 1 + (P+1)N, dim)."""
        b, t = x_sketch.shape
        p = self.cfg.block_size
        n = t // p
        s = self.embed_sketch(x_sketch).view(b, n, p, -1)
        a = self.acoustic_tokens(x_latent)[:, :, None]
        body = torch.cat([s, a.to(s.dtype)], dim=2).reshape(b, n * (p + 1), -1)
        bos = self.bos_token.to(body.dtype).expand(b, 1, -1)
        return torch.cat([bos, body], dim=1)

    def sample_timesteps(self, n: int, device: torch.device) -> torch.Tensor:
        if self.cfg.timestep_sampler == "logit_normal":
            return torch.sigmoid(torch.randn(n, device=device))
        assert self.sobol is not None
        return self.sobol.draw(n)[:, 0].to(device)

    def noise_and_target(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor):
        """Return (x_t, target) for the configured objective (t=1 is noise, t=0 is data)."""
        tt = t[:, None, None].to(x0.dtype)
        if self.cfg.diffusion_objective == "rectified_flow":
            return (1 - tt) * x0 + tt * noise, noise - x0
        alpha, sigma = torch.cos(tt * math.pi / 2), torch.sin(tt * math.pi / 2)
        return x0 * alpha + noise * sigma, noise * alpha - x0 * sigma

    # ------------------------------------------------------------------ teacher-forced forward
    def forward(
        self,
        x_sketch: torch.Tensor,
        x_latent: torch.Tensor,
        x_len: torch.Tensor,
        conditions: ConditionTensors,
        *,
        noise: torch.Tensor | None = None,
        t: torch.Tensor | None = None,
        h_drop: torch.Tensor | None = None,
        s_drop: torch.Tensor | None = None,
        return_hidden: bool = False,
    ) -> ForwardOutput:
        """Teacher-forced pass over both stages.

        Args:
            x_sketch: (B, T) sketch ids, EOS-padded past ``x_len``; T a multiple of ``block_size``.
            x_latent: (B, latent_dim, T) latents, zero past ``x_len``.
            x_len: (B,) valid frames per row (multiples of ``block_size``).
            conditions: from :meth:`encode_conditions`.
            noise, t: optional explicit flow noise (n, P, C) and times (n,) for n valid patches; drawn in
                the release order (t, then noise) when omitted.
            h_drop, s_drop: optional (n,) bool masks of patches whose h / sketch embeddings are zeroed. In
                training mode they are drawn (two ``rand`` calls, h first) with p = ``h_dropout``.
        """
        cfg = self.cfg
        p = cfg.block_size
        b, t_frames = x_sketch.shape
        if t_frames % p or x_latent.shape[-1] != t_frames:
            raise ValueError(
                f"x_sketch has {t_frames} frames and x_latent {x_latent.shape[-1]}: both must match and be a "
                f"multiple of block_size={p}"
            )
        if bool((x_len % p).any()):
            raise ValueError(f"x_len {x_len.tolist()} must be multiples of block_size={p}")
        n_blocks = t_frames // p

        prefix = conditions.prefix()
        stream = self.build_stream(x_sketch, x_latent)
        hidden = self.ar_transformer(torch.cat([prefix.to(stream.dtype), stream], dim=1))
        out = hidden[:, prefix.shape[1] :]  # (B, 1 + (P+1)N, dim)

        pos = torch.arange(out.shape[1], device=out.device)
        is_h = (pos + 1) % (p + 1) == 0
        logits = self.classify(out[:, ~is_h])
        h_all = out[:, is_h]  # (B, N, dim)

        target = F.pad(x_sketch, (0, 1), value=cfg.eos_id)
        idx = torch.arange(t_frames + 1, device=x_sketch.device)[None]
        target = torch.where(idx == x_len[:, None], torch.full_like(target, cfg.eos_id), target)
        target = torch.where(idx > x_len[:, None], torch.full_like(target, cfg.special_id), target)

        # ---- DiT batch: valid patches of all rows, concatenated in row order
        valid = torch.arange(n_blocks, device=x_len.device)[None] < (x_len // p)[:, None]  # (B, N)
        patches = x_latent.transpose(1, 2).reshape(b, n_blocks, p, -1).contiguous()
        prev = torch.cat([torch.zeros_like(patches[:, :1]), patches[:, :-1]], dim=1)
        s_emb = self.embed_sketch(x_sketch).view(b, n_blocks, p, -1)
        x0, prev, h, s = patches[valid], prev[valid], h_all[valid], s_emb[valid]
        n = x0.shape[0]
        if self.training and cfg.h_dropout > 0:
            if h_drop is None:
                h_drop = torch.rand((n, 1), device=h.device)[:, 0] < cfg.h_dropout
            if s_drop is None:
                s_drop = torch.rand((n, 1), device=h.device)[:, 0] < cfg.h_dropout
        if h_drop is not None:
            h = h * (~h_drop.to(h.device))[:, None].to(h.dtype)
        if s_drop is not None:
            s = s * (~s_drop.to(s.device))[:, None, None].to(s.dtype)
        with torch.autocast(device_type=x0.device.type, enabled=False):
            if t is None:
                t = self.sample_timesteps(n, x0.device)
            t = t.float()
            if noise is None:
                # Explicit shape, not randn_like: the draw must fill (patch, time, channel) in that order
                # whatever the memory layout of x0 (docs/design/fidelity.md#training-noise-layout).
                noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype)
            x_t, nar_target = self.noise_and_target(x0, t, noise.to(x0.dtype))
        nar_pred = self.dit_velocity(x_t, t, h, s, prev)
        return ForwardOutput(
            ar_logit=logits,
            ar_target=target,
            nar_pred=nar_pred,
            nar_target=nar_target,
            nar_t=t,
            hidden=hidden if return_hidden else None,
        )

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
