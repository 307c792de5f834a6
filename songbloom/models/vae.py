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

import dataclasses
import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from songbloom.models.vae_blocks import OobleckDecoder, OobleckEncoder, _WeightNormConv

logger = logging.getLogger(__name__)

MIN_ENCODE_SAMPLES = 2048
"""Waveforms shorter than this encode to an empty latent (B, D, 0); the release builds its null prompt this way."""

POSTERIOR_STD_FLOOR = 1e-4
"""Added after the softplus: stdev = softplus(scale) + 1e-4 (docs/design/fidelity.md#vae-posterior-floor)."""

RELEASE_CONFIG_NAME = "stable_audio_1920_vae.json"

# Constructor defaults of the upstream Oobleck classes: a stable-audio json that omits a key gets these.
_ENCODER_JSON_DEFAULTS: dict[str, Any] = {
    "in_channels": 2,
    "channels": 128,
    "c_mults": [1, 2, 4, 8],
    "strides": [2, 4, 8, 8],
    "latent_dim": 32,
    "use_snake": False,
}
_DECODER_JSON_DEFAULTS: dict[str, Any] = {
    "out_channels": 2,
    "channels": 128,
    "c_mults": [1, 2, 4, 8],
    "strides": [2, 4, 8, 8],
    "latent_dim": 32,
    "use_snake": False,
    "final_tanh": True,
}
# Options of the upstream classes that this implementation does not build; accepted only when off.
_UNSUPPORTED_FLAGS = ("antialias_activation", "use_nearest_upsample")


# ----------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class OobleckEncoderConfig:
    """``model.encoder.config`` of a stable-audio json. ``latent_dim`` is 2x the VAE latent (mean and scale)."""

    in_channels: int
    channels: int
    c_mults: tuple[int, ...]
    strides: tuple[int, ...]
    latent_dim: int
    use_snake: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "c_mults", tuple(int(m) for m in self.c_mults))
        object.__setattr__(self, "strides", tuple(int(s) for s in self.strides))


@dataclass(frozen=True)
class OobleckDecoderConfig:
    """``model.decoder.config`` plus the decoder-level ``soft_clip`` flag (upstream reads it there, not in config)."""

    out_channels: int
    channels: int
    c_mults: tuple[int, ...]
    strides: tuple[int, ...]
    latent_dim: int
    use_snake: bool
    final_tanh: bool
    soft_clip: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "c_mults", tuple(int(m) for m in self.c_mults))
        object.__setattr__(self, "strides", tuple(int(s) for s in self.strides))


@dataclass(frozen=True)
class VAEConfig:
    """A stable-audio autoencoder json (``model_type: autoencoder``, oobleck encoder/decoder, ``vae`` bottleneck).

    ``from_dict``/``to_dict`` keep the json layout so ``VAEConfig.release().to_dict()`` is the released
    ``stable_audio_1920_vae.json`` model section. ``in_channels``/``out_channels`` (model level, usually absent)
    override ``io_channels`` as in upstream.
    """

    encoder: OobleckEncoderConfig
    decoder: OobleckDecoderConfig
    latent_dim: int
    downsampling_ratio: int
    io_channels: int
    sample_rate: int
    in_channels: int | None = None
    out_channels: int | None = None
    sample_size: int | None = None
    audio_channels: int | None = None

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("invalid VAE config:\n  - " + "\n  - ".join(problems))

    # --- derived
    @property
    def frame_rate(self) -> float:
        """Latent frames per second (48000 / 1920 = 25 for the release)."""
        return self.sample_rate / self.downsampling_ratio

    @property
    def input_channels(self) -> int:
        """Channels the encoder takes; mono input is repeated to this."""
        return self.io_channels if self.in_channels is None else self.in_channels

    @property
    def output_channels(self) -> int:
        """Channels the decoder writes."""
        return self.io_channels if self.out_channels is None else self.out_channels

    def problems(self) -> list[str]:
        """Every inconsistency of the geometry, as readable sentences naming the json field."""
        enc, dec = self.encoder, self.decoder
        out: list[str] = []
        for name, value in (
            ("model.latent_dim", self.latent_dim),
            ("model.downsampling_ratio", self.downsampling_ratio),
            ("model.io_channels", self.io_channels),
            ("sample_rate", self.sample_rate),
            ("model.encoder.config.channels", enc.channels),
            ("model.encoder.config.in_channels", enc.in_channels),
            ("model.decoder.config.channels", dec.channels),
            ("model.decoder.config.out_channels", dec.out_channels),
        ):
            if int(value) <= 0:
                out.append(f"{name} must be positive, got {value}")
        for part, cfg in (("encoder", enc), ("decoder", dec)):
            if not cfg.strides:
                out.append(f"model.{part}.config.strides is empty")
            if len(cfg.c_mults) != len(cfg.strides):
                out.append(
                    f"model.{part}.config: c_mults {list(cfg.c_mults)} and strides {list(cfg.strides)} must have the "
                    "same length (one block per stride)"
                )
            if any(m <= 0 for m in cfg.c_mults) or any(s <= 0 for s in cfg.strides):
                out.append(f"model.{part}.config: c_mults and strides must be positive")
            elif math.prod(cfg.strides) != self.downsampling_ratio:
                out.append(
                    f"model.{part}.config.strides {list(cfg.strides)} multiply to {math.prod(cfg.strides)}, "
                    f"but model.downsampling_ratio is {self.downsampling_ratio}"
                )
        if any(s % 2 for s in dec.strides):
            out.append(
                f"model.decoder.config.strides {list(dec.strides)} must all be even: a transposed conv with kernel 2s "
                "and padding ceil(s/2) gives exactly s samples per frame only for even s (chunked decode needs that)"
            )
        if enc.latent_dim != 2 * self.latent_dim:
            out.append(
                f"model.encoder.config.latent_dim is {enc.latent_dim}; the vae bottleneck needs 2 x model.latent_dim "
                f"= {2 * self.latent_dim} (mean and scale)"
            )
        if dec.latent_dim != self.latent_dim:
            out.append(f"model.decoder.config.latent_dim is {dec.latent_dim}, model.latent_dim is {self.latent_dim}")
        if enc.in_channels != self.input_channels:
            out.append(
                f"model.encoder.config.in_channels is {enc.in_channels} but the model takes {self.input_channels} "
                "channels (model.in_channels or model.io_channels)"
            )
        if dec.out_channels != self.output_channels:
            out.append(
                f"model.decoder.config.out_channels is {dec.out_channels} but the model writes {self.output_channels} "
                "channels (model.out_channels or model.io_channels)"
            )
        return out

    # --- presets
    @classmethod
    def release(cls) -> VAEConfig:
        """The released ``stable_audio_1920_vae.json``: 48 kHz stereo, ratio 1920 (25 Hz), 64-d latent, 168.7 M."""
        return cls._symmetric(
            channels=128,
            c_mults=(1, 2, 4, 8, 16),
            strides=(2, 4, 4, 6, 10),
            latent_dim=64,
            io_channels=2,
            sample_rate=48000,
            sample_size=403200,
            audio_channels=2,
        )

    @classmethod
    def tiny(cls) -> VAEConfig:
        """A few-thousand-parameter VAE with the release's frame geometry (48 kHz, ratio 1920, 25 Hz).

        For tests and the CPU demo: latents line up with the sketch tokens exactly as with the release VAE, but
        4 channels everywhere make encoding hundreds of times faster than real time on a CPU.
        """
        return cls._symmetric(
            channels=4,
            c_mults=(1, 1, 1, 1, 1),
            strides=(2, 4, 4, 6, 10),
            latent_dim=8,
            io_channels=2,
            sample_rate=48000,
        )

    @classmethod
    def _symmetric(
        cls,
        *,
        channels: int,
        c_mults: tuple[int, ...],
        strides: tuple[int, ...],
        latent_dim: int,
        io_channels: int,
        sample_rate: int,
        sample_size: int | None = None,
        audio_channels: int | None = None,
    ) -> VAEConfig:
        return cls(
            encoder=OobleckEncoderConfig(io_channels, channels, c_mults, strides, 2 * latent_dim, use_snake=True),
            decoder=OobleckDecoderConfig(
                io_channels, channels, c_mults, strides, latent_dim, use_snake=True, final_tanh=False
            ),
            latent_dim=latent_dim,
            downsampling_ratio=math.prod(strides),
            io_channels=io_channels,
            sample_rate=sample_rate,
            sample_size=sample_size,
            audio_channels=audio_channels,
        )

    # --- json
    @classmethod
    def from_json(cls, path: str | Path) -> VAEConfig:
        """Read a stable-audio autoencoder json (e.g. ``stable_audio_1920_vae.json``)."""
        path = Path(path)
        try:
            with open(path, encoding="utf-8") as f:
                raw = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON (line {err.lineno}, column {err.colno}): {err.msg}") from err
        try:
            return cls.from_dict(raw)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> VAEConfig:
        """Parse the stable-audio json layout; missing encoder/decoder keys take the upstream class defaults."""
        if not isinstance(d, Mapping) or not isinstance(d.get("model"), Mapping):
            raise ValueError("expected a stable-audio autoencoder config with a 'model' section")
        model_type = d.get("model_type", "autoencoder")
        if model_type != "autoencoder":
            raise ValueError(f"model_type is {model_type!r}; only 'autoencoder' configs describe this VAE")
        for key in set(d) - {"model_type", "sample_size", "sample_rate", "audio_channels", "model"}:
            # Typically 'training' (losses, optimiser): irrelevant to the network.
            logger.debug("VAE config: ignoring top-level section %r", key)
        m = d["model"]
        known_model_keys = {
            "encoder", "decoder", "bottleneck", "latent_dim", "downsampling_ratio", "io_channels",
            "in_channels", "out_channels", "pretransform",
        }  # fmt: skip
        for key in set(m) - known_model_keys:
            logger.warning("VAE config: ignoring unknown key model.%s (upstream ignores it too)", key)
        if m.get("pretransform") is not None:
            raise ValueError("model.pretransform is not supported (the SongBloom VAE has none)")
        bottleneck = m.get("bottleneck")
        if not isinstance(bottleneck, Mapping) or bottleneck.get("type") != "vae" or set(bottleneck) != {"type"}:
            raise ValueError(f"model.bottleneck must be {{'type': 'vae'}} (the SongBloom VAE), got {bottleneck!r}")
        for key in ("latent_dim", "downsampling_ratio", "io_channels"):
            if key not in m:
                raise ValueError(f"model.{key} is required")
        if "sample_rate" not in d:
            raise ValueError("sample_rate is required")
        enc = _parse_part(m.get("encoder"), "encoder", _ENCODER_JSON_DEFAULTS)
        dec_section = m.get("decoder")
        dec = _parse_part(dec_section, "decoder", _DECODER_JSON_DEFAULTS)
        soft_clip = dec_section.get("soft_clip", False)
        return cls(
            encoder=OobleckEncoderConfig(**enc),
            decoder=OobleckDecoderConfig(**dec, soft_clip=bool(soft_clip)),
            latent_dim=int(m["latent_dim"]),
            downsampling_ratio=int(m["downsampling_ratio"]),
            io_channels=int(m["io_channels"]),
            sample_rate=int(d["sample_rate"]),
            in_channels=None if m.get("in_channels") is None else int(m["in_channels"]),
            out_channels=None if m.get("out_channels") is None else int(m["out_channels"]),
            sample_size=None if d.get("sample_size") is None else int(d["sample_size"]),
            audio_channels=None if d.get("audio_channels") is None else int(d["audio_channels"]),
        )

    def to_dict(self) -> dict[str, Any]:
        """The stable-audio json layout (optional keys only when set), so from_dict(to_dict()) round-trips."""
        enc = dataclasses.asdict(self.encoder)
        dec = dataclasses.asdict(self.decoder)
        soft_clip = dec.pop("soft_clip")
        for part in (enc, dec):
            part["c_mults"], part["strides"] = list(part["c_mults"]), list(part["strides"])
        decoder_section: dict[str, Any] = {"type": "oobleck", "config": dec}
        if soft_clip:
            decoder_section["soft_clip"] = True
        model: dict[str, Any] = {
            "encoder": {"type": "oobleck", "config": enc},
            "decoder": decoder_section,
            "bottleneck": {"type": "vae"},
            "latent_dim": self.latent_dim,
            "downsampling_ratio": self.downsampling_ratio,
            "io_channels": self.io_channels,
        }
        for key in ("in_channels", "out_channels"):
            if getattr(self, key) is not None:
                model[key] = getattr(self, key)
        out: dict[str, Any] = {"model_type": "autoencoder"}
        if self.sample_size is not None:
            out["sample_size"] = self.sample_size
        out["sample_rate"] = self.sample_rate
        if self.audio_channels is not None:
            out["audio_channels"] = self.audio_channels
        out["model"] = model
        return out

    def to_json(self, path: str | Path) -> None:
        """Write the json that ``from_json`` (and the official code) reads."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=4) + "\n", encoding="utf-8")


def _parse_part(section: Any, part: str, defaults: dict[str, Any]) -> dict[str, Any]:
    where = f"model.{part}"
    if not isinstance(section, Mapping):
        raise ValueError(f"{where} is missing")
    if section.get("type") != "oobleck":
        raise ValueError(f"{where}.type is {section.get('type')!r}; only 'oobleck' is supported")
    # requires_grad is a training switch; soft_clip is read from the decoder section
    # (docs/design/fidelity.md#vae-soft-clip-in-decoder).
    allowed = {"type", "config", "requires_grad"} | ({"soft_clip"} if part == "decoder" else set())
    extra = set(section) - allowed
    if extra:
        raise ValueError(f"{where}: unknown keys {sorted(extra)}")
    cfg = dict(section.get("config") or {})
    for flag in _UNSUPPORTED_FLAGS:
        if cfg.pop(flag, False):
            raise ValueError(f"{where}.config.{flag}=true is not supported (the SongBloom VAE does not use it)")
    unknown = set(cfg) - set(defaults)
    if unknown:
        raise ValueError(f"{where}.config: unknown keys {sorted(unknown)}; expected a subset of {sorted(defaults)}")
    return {**defaults, **cfg}


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


def _check_chunking(chunk_size: int, overlap: int) -> None:
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
    _check_chunking(chunk_size, overlap)
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


class OobleckVAE(nn.Module):
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

    # --- float32 guard
    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> OobleckVAE:
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
                "OobleckVAE stays float32: ignored a cast to %s (the VAE degrades in low precision)",
                ", ".join(sorted(map(str, ignored))),
            )
        return self

    # --- encode
    def _as_encoder_input(self, wav: torch.Tensor) -> torch.Tensor:
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

    def encode_moments(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior (mean, pre-softplus scale), each (B, latent_dim, T // ratio); mono is repeated to in_channels."""
        x = self._as_encoder_input(wav)
        with torch.autocast(device_type=x.device.type, enabled=False):
            raw = self.encoder(x)
        mean, scale = raw.chunk(2, dim=1)
        return mean, scale

    @staticmethod
    def sample(mean: torch.Tensor, scale: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Draw latent = noise * (softplus(scale) + 1e-4) + mean; ``noise`` replays a stored N(0, 1) draw."""
        if noise is None:
            noise = torch.randn_like(mean)
        elif noise.shape != mean.shape:
            raise ValueError(f"noise shape {tuple(noise.shape)} does not match the latent shape {tuple(mean.shape)}")
        stdev = F.softplus(scale) + POSTERIOR_STD_FLOOR
        return noise.to(mean) * stdev + mean

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
            _check_chunking(chunk_size, overlap)
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
