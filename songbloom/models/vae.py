"""The Stable-Audio "Oobleck" VAE that SongBloom uses for prompt latents and the final waveform.

It turns 48 kHz stereo audio into 64-d latents at 25 Hz (one frame per 1920 samples) and back. The layout of
the modules and the state dict follows the released ``autoencoder_music_dsp1920.ckpt`` so it loads strictly;
the behaviour (posterior sampling, the 2048-sample floor of ``encode``, chunked decoding) follows what the
release does at inference, because SongBloom was trained and evaluated on exactly those latents.

The VAE always computes in float32: encode/decode disable autocast and upcast their inputs, and the module
refuses to be cast to another floating dtype (a parent's ``.to(torch.bfloat16)`` leaves it in float32). The
release degraded audio when its VAE ran in bf16.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from songbloom.models.vae_blocks import OobleckDecoder, OobleckEncoder, _WeightNormConv
from songbloom.models.vae_config import (  # noqa: F401 (the config's import path before vae_config)
    RELEASE_CONFIG_NAME,
    OobleckDecoderConfig,
    OobleckEncoderConfig,
    VAEConfig,
)

logger = logging.getLogger(__name__)

MIN_ENCODE_SAMPLES = 2048
"""Waveforms shorter than this encode to an empty latent (B, D, 0); the release builds its null prompt this way."""

POSTERIOR_STD_FLOOR = 1e-4
"""Added after the softplus: stdev = softplus(scale) + 1e-4 (docs/design/fidelity.md#vae-posterior-floor)."""


def posterior_std(scale: torch.Tensor) -> torch.Tensor:
    """The posterior standard deviation of a stored pre-softplus ``scale`` (what ``encode_moments`` returns and
    shards store): every consumer that samples latents goes through this, never ``scale`` itself."""
    return F.softplus(scale) + POSTERIOR_STD_FLOOR


def scale_for_std(std: float) -> float:
    """The pre-softplus scale whose :func:`posterior_std` is ``std`` (at least the floor, then ~1e-4)."""
    target = max(float(std) - POSTERIOR_STD_FLOOR, 1e-12)
    return target + math.log(-math.expm1(-target))  # inverse softplus, stable for tiny and large targets


# ------------------------------------------------------------------------------------------------ model


@dataclass(frozen=True)
class ChunkPaste:
    """One chunk of a chunked decode, in latent frames: decode latent[start:start+size], keep [keep_from, keep_to)."""

    start: int
    keep_from: int
    keep_to: int

    @property
    def out_start(self) -> int:
        return self.start + self.keep_from

    @property
    def out_end(self) -> int:
        return self.start + self.keep_to


class Float32Module(nn.Module):
    """A module whose float32 tensors stay float32 through ``.to(dtype)``/``.half()``/``.bfloat16()`` of a parent.

    Device moves still apply. The VAEs derive from it: the release degraded audio when its VAE ran in bf16.
    """

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> Float32Module:
        """Follow device moves but keep float32: ``.to(bf16)``/``.half()`` on a parent must not reach the VAE."""
        ignored: set[torch.dtype] = set()

        def keep_float32(t: torch.Tensor) -> torch.Tensor:
            out = fn(t)
            if t.dtype == torch.float32 and out.dtype != torch.float32 and out.is_floating_point():
                ignored.add(out.dtype)
                return t.to(out.device)
            return out

        super()._apply(keep_float32, recurse)
        if ignored:
            logger.warning(
                "%s stays float32: ignored a cast to %s (the VAE degrades in low precision)",
                type(self).__name__,
                ", ".join(sorted(map(str, ignored))),
            )
        return self


class WaveformVAE(Float32Module):
    """What both VAE kinds share: the waveform they accept, the posterior draw and ``encode`` on top of a kind's
    ``encode_moments`` (mean and pre-softplus scale). A kind defines ``in_channels``, ``latent_dim`` and
    ``encode_moments``; sampling then follows the release rule for every kind."""

    in_channels: int
    latent_dim: int

    def encode_moments(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _as_encoder_input(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, C, T) float32; mono (B, T) or (B, 1, T) is repeated to every channel."""
        if wav.ndim == 2:  # (B, T): mono
            wav = wav.unsqueeze(1)
        if wav.ndim != 3:
            raise ValueError(f"VAE encode expects a waveform (B, C, T) or (B, T), got shape {tuple(wav.shape)}")
        channels = wav.shape[1]
        if channels == 1 and self.in_channels != 1:
            wav = wav.repeat(1, self.in_channels, 1)
        elif channels != self.in_channels:
            raise ValueError(
                f"VAE encode got {channels} channels; it takes mono or {self.in_channels} channels "
                "(down-mix or repeat the audio first)"
            )
        return wav.float()


    @staticmethod
    def sample(mean: torch.Tensor, scale: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Draw latent = noise * (softplus(scale) + 1e-4) + mean; ``noise`` replays a stored N(0, 1) draw."""
        if noise is None:
            noise = torch.randn_like(mean)
        elif noise.shape != mean.shape:
            raise ValueError(f"noise shape {tuple(noise.shape)} does not match the latent shape {tuple(mean.shape)}")
        return noise.to(mean) * posterior_std(scale) + mean

    def encode(self, wav: torch.Tensor, sample: bool = True, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Waveform -> latent (B, latent_dim, T // ratio), float32.

        ``sample=True`` (what the release does for prompts) draws from the posterior, from the global RNG unless
        ``noise`` is given; ``sample=False`` returns the mean. Fewer than 2048 samples give an empty (B, D, 0)
        latent without running the encoder or drawing noise, as the release does for its null prompt.
        """
        if wav.ndim not in (2, 3):
            raise ValueError(f"VAE encode expects a waveform (B, C, T) or (B, T), got shape {tuple(wav.shape)}")
        if wav.shape[-1] < MIN_ENCODE_SAMPLES:
            return torch.zeros(wav.shape[0], self.latent_dim, 0, device=wav.device, dtype=torch.float32)
        mean, scale = self.encode_moments(wav)
        if not sample:
            return mean
        with torch.autocast(device_type=mean.device.type, enabled=False):
            return self.sample(mean, scale, noise)


def check_chunking(chunk_size: int, overlap: int) -> None:
    """Raise unless ``chunk_size > overlap >= 0`` (the chunked decode's window and overlap, in latent frames)."""
    if chunk_size <= 0 or overlap < 0 or overlap >= chunk_size:
        raise ValueError(
            f"chunked decode needs chunk_size > overlap >= 0, got chunk_size={chunk_size}, overlap={overlap}"
        )


def plan_chunks(num_frames: int, chunk_size: int, overlap: int) -> list[ChunkPaste]:
    """The release's chunk layout; pasted in order, a later chunk overwrites an earlier one
    (docs/design/fidelity.md#vae-chunk-layout).

    Chunks start at 0, hop, 2*hop, ... while start + chunk_size <= num_frames (hop = chunk_size - overlap); one more
    chunk aligned to the end is added when the last one does not end exactly at num_frames. Each chunk drops
    overlap // 2 frames on every side that touches another chunk (hard cut, no crossfade). Requires
    num_frames >= chunk_size (the caller decodes shorter latents in one pass).
    """
    check_chunking(chunk_size, overlap)
    if num_frames < chunk_size:
        raise ValueError(f"plan_chunks needs num_frames >= chunk_size, got {num_frames} < {chunk_size}")
    hop = chunk_size - overlap
    starts = list(range(0, num_frames - chunk_size + 1, hop))
    if starts[-1] + chunk_size != num_frames:
        starts.append(num_frames - chunk_size)
    trim = overlap // 2
    last = len(starts) - 1
    return [
        ChunkPaste(start, keep_from=trim if j > 0 else 0, keep_to=chunk_size - trim if j < last else chunk_size)
        for j, start in enumerate(starts)
    ]


class OobleckVAE(WaveformVAE):
    """Encoder + ``vae`` bottleneck + decoder; state-dict keys ``encoder.*`` / ``decoder.*`` as released.

    Shapes: waveforms (B, C, T) at ``sample_rate``; latents (B, latent_dim, F) with F = T // downsampling_ratio.
    """

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        e, d = cfg.encoder, cfg.decoder
        self.encoder = OobleckEncoder(e.in_channels, e.channels, e.c_mults, e.strides, e.latent_dim, e.use_snake)
        self.decoder = OobleckDecoder(
            d.out_channels, d.channels, d.c_mults, d.strides, d.latent_dim, d.use_snake, d.final_tanh
        )

    # --- geometry
    @property
    def sample_rate(self) -> int:
        return self.cfg.sample_rate

    @property
    def downsampling_ratio(self) -> int:
        return self.cfg.downsampling_ratio

    @property
    def latent_dim(self) -> int:
        return self.cfg.latent_dim

    @property
    def io_channels(self) -> int:
        return self.cfg.io_channels

    @property
    def in_channels(self) -> int:
        return self.cfg.input_channels

    @property
    def out_channels(self) -> int:
        return self.cfg.output_channels

    @property
    def frame_rate(self) -> float:
        return self.cfg.frame_rate

    # --- encode
    def encode_moments(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior (mean, pre-softplus scale), each (B, latent_dim, T // ratio); mono is repeated to in_channels."""
        x = self._as_encoder_input(wav)
        with torch.autocast(device_type=x.device.type, enabled=False):
            raw = self.encoder(x)
        mean, scale = raw.chunk(2, dim=1)
        return mean, scale


    # --- decode
    def _decode_once(self, latent: torch.Tensor) -> torch.Tensor:
        audio = self.decoder(latent)
        return torch.tanh(audio) if self.cfg.decoder.soft_clip else audio

    def decode(
        self, latent: torch.Tensor, chunked: bool = False, chunk_size: int = 128, overlap: int = 32
    ) -> torch.Tensor:
        """Latent (B, latent_dim, F) -> waveform (B, out_channels, F * ratio), float32.

        ``chunked`` decodes windows of ``chunk_size`` frames independently (memory stays flat for long songs) and
        stitches them as the release does (see ``plan_chunks``); near the seams the result differs from a one-pass
        decode (hard cuts, no crossfade), so keep ``chunked=True`` where release-identical audio is wanted.
        A latent shorter than ``chunk_size`` is decoded in one pass: the release crashes there (PR #38), and one pass
        is what its single chunk would give.
        """
        if latent.ndim != 3 or latent.shape[1] != self.latent_dim:
            raise ValueError(f"VAE decode expects a latent (B, {self.latent_dim}, F), got shape {tuple(latent.shape)}")
        if chunked:
            check_chunking(chunk_size, overlap)
        batch, frames = latent.shape[0], latent.shape[2]
        if frames == 0:
            return torch.zeros(batch, self.out_channels, 0, device=latent.device, dtype=torch.float32)
        latent = latent.float()
        with torch.autocast(device_type=latent.device.type, enabled=False):
            if not chunked or frames < chunk_size:
                return self._decode_once(latent)
            ratio = self.downsampling_ratio
            audio = torch.zeros(batch, self.out_channels, frames * ratio, device=latent.device, dtype=torch.float32)
            for chunk in plan_chunks(frames, chunk_size, overlap):
                piece = self._decode_once(latent[:, :, chunk.start : chunk.start + chunk_size])
                audio[:, :, chunk.out_start * ratio : chunk.out_end * ratio] = piece[
                    :, :, chunk.keep_from * ratio : chunk.keep_to * ratio
                ]
            return audio

    # --- inference speed
    def fold_weight_norm(self, enabled: bool = True) -> OobleckVAE:
        """Cache each conv's g * v / ||v|| under no_grad instead of recomputing it per call (same numbers).

        The cache is keyed on the parameters' version counters, so loading weights or an optimiser step
        invalidates it; with grad enabled the weight is always recomputed.
        """
        for module in self.modules():
            if isinstance(module, _WeightNormConv):
                module.fold_weight = enabled
                module._folded = None
        return self


_MOVED = {"load_vae": "songbloom.checkpoints.vae", "state_dict_problems": "songbloom.checkpoints.vae"}


def __getattr__(name: str) -> Any:
    """Loading moved to :mod:`songbloom.checkpoints.vae`; the old names resolve there with a warning.

    Resolved by name at run time (PEP 562) so that model code keeps no import of the checkpoint layer.
    """
    if name in _MOVED:
        import importlib
        import warnings

        warnings.warn(
            f"songbloom.models.vae.{name} is deprecated: import it from {_MOVED[name]} (see docs/migration.md)",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
