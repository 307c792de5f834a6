"""The Oobleck VAE's geometry: a stable-audio autoencoder json (``stable_audio_1920_vae.json``) as typed config.

``VAEConfig.from_json``/``from_dict`` read the json layout and ``to_dict``/``to_json`` write it back; every
inconsistency of the geometry is reported at construction (:meth:`VAEConfig.problems`). The network itself is
:class:`songbloom.models.vae.OobleckVAE`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

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
        return [
            *self._size_problems(),
            *_part_problems("encoder", self.encoder, self.downsampling_ratio),
            *_part_problems("decoder", self.decoder, self.downsampling_ratio),
            *self._latent_and_channel_problems(),
        ]

    def _size_problems(self) -> list[str]:
        enc, dec = self.encoder, self.decoder
        return [
            f"{name} must be positive, got {value}"
            for name, value in (
                ("model.latent_dim", self.latent_dim),
                ("model.downsampling_ratio", self.downsampling_ratio),
                ("model.io_channels", self.io_channels),
                ("sample_rate", self.sample_rate),
                ("model.encoder.config.channels", enc.channels),
                ("model.encoder.config.in_channels", enc.in_channels),
                ("model.decoder.config.channels", dec.channels),
                ("model.decoder.config.out_channels", dec.out_channels),
            )
            if int(value) <= 0
        ]

    def _latent_and_channel_problems(self) -> list[str]:
        enc, dec = self.encoder, self.decoder
        out: list[str] = []
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


def _part_problems(part: str, cfg: OobleckEncoderConfig | OobleckDecoderConfig, downsampling_ratio: int) -> list[str]:
    """The encoder's or decoder's blocks: one per stride, positive, multiplying to the downsampling ratio."""
    out: list[str] = []
    if not cfg.strides:
        out.append(f"model.{part}.config.strides is empty")
    if len(cfg.c_mults) != len(cfg.strides):
        out.append(
            f"model.{part}.config: c_mults {list(cfg.c_mults)} and strides {list(cfg.strides)} must have the "
            "same length (one block per stride)"
        )
    if any(m <= 0 for m in cfg.c_mults) or any(s <= 0 for s in cfg.strides):
        out.append(f"model.{part}.config: c_mults and strides must be positive")
    elif math.prod(cfg.strides) != downsampling_ratio:
        out.append(
            f"model.{part}.config.strides {list(cfg.strides)} multiply to {math.prod(cfg.strides)}, "
            f"but model.downsampling_ratio is {downsampling_ratio}"
        )
    return out
