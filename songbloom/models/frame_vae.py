"""A per-frame linear VAE: a stand-in for the Oobleck VAE where audio must survive the round trip exactly.

The CPU proxy of sketch-id recovery (issue #17) needs a VAE whose decode -> encode keeps what the generator
wrote: a random Oobleck VAE does not reconstruct audio, so ids read back from decoded audio would be noise.
Here each latent frame is one linear map of its ``io_channels * hop`` samples (encode) and back (decode);
frames never mix, so ``chunked`` decoding equals one pass and a song's audio depends on each frame alone.
:meth:`FrameLinearVAE.sinusoidal` builds an orthonormal basis of sinusoids at integer multiples of the frame
rate with the decoder its transpose, so ``decode(encode(x)) == x`` for audio in the basis span and
``encode(decode(z)) == z`` for every latent.

The public interface is the one the rest of the package uses on :class:`~songbloom.models.vae.OobleckVAE`
(geometry properties, ``encode_moments``, ``sample``, ``encode``, ``decode``, float32 only). Its posterior
follows the same convention: ``encode_moments`` returns a pre-softplus ``scale`` whose
:func:`~songbloom.models.vae.posterior_std` is ``posterior_std``, at least the release's 1e-4 floor (so a
sampled latent is within ~1e-4 of the mean by default), and shards, training and prompt sampling treat both kinds alike.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from songbloom.models.vae import WaveformVAE, check_chunking, scale_for_std

logger = logging.getLogger(__name__)

FRAME_LINEAR_MODEL_TYPE = "songbloom_frame_linear"

# Musically plausible range of the sinusoidal basis (Hz): bass to the upper voice, where MuQ-like features live.
SINUSOID_MIN_HZ = 80.0
SINUSOID_MAX_HZ = 2000.0

_JSON_KEYS = {"model_type", "sample_rate", "hop", "latent_dim", "io_channels", "posterior_std", "basis"}
_REQUIRED_KEYS = ("sample_rate", "hop", "latent_dim")


@dataclass(frozen=True)
class FrameLinearConfig:
    """The json of a frame-linear VAE (``"model_type": "songbloom_frame_linear"``).

    ``hop`` samples per latent frame (the downsampling ratio); ``posterior_std`` the constant standard deviation
    ``encode_moments`` reports (0: deterministic); ``basis`` free text saying how the weights were made.
    """

    MODEL_TYPE: ClassVar[str] = FRAME_LINEAR_MODEL_TYPE

    sample_rate: int
    hop: int
    latent_dim: int
    io_channels: int = 2
    posterior_std: float = 0.0
    basis: str | None = None

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("invalid frame-linear VAE config:\n  - " + "\n  - ".join(problems))

    def problems(self) -> list[str]:
        """Every inconsistency, as sentences naming the json field."""
        out = [
            f"{name} must be a positive integer, got {value!r}"
            for name, value in (
                ("sample_rate", self.sample_rate),
                ("hop", self.hop),
                ("latent_dim", self.latent_dim),
                ("io_channels", self.io_channels),
            )
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0
        ]
        std = self.posterior_std
        if isinstance(std, bool) or not isinstance(std, (int, float)) or not math.isfinite(std) or std < 0:
            out.append(f"posterior_std must be a finite number >= 0, got {std!r}")
        if not out and self.latent_dim > self.io_channels * self.hop:
            out.append(
                f"latent_dim {self.latent_dim} exceeds the {self.io_channels} x {self.hop} samples of a frame "
                "(an invertible per-frame map cannot have more latent dimensions than samples)"
            )
        return out

    # --- the geometry names OobleckVAE's config uses
    @property
    def downsampling_ratio(self) -> int:
        return self.hop

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop

    @property
    def input_channels(self) -> int:
        return self.io_channels

    @property
    def output_channels(self) -> int:
        return self.io_channels

    @property
    def frame_size(self) -> int:
        """Samples of one frame over all channels: the width of the linear maps."""
        return self.io_channels * self.hop

    # --- json
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model_type": self.MODEL_TYPE,
            "sample_rate": self.sample_rate,
            "hop": self.hop,
            "latent_dim": self.latent_dim,
            "io_channels": self.io_channels,
            "posterior_std": float(self.posterior_std),
        }
        if self.basis is not None:
            out["basis"] = self.basis
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FrameLinearConfig:
        if not isinstance(d, Mapping):
            raise ValueError(f"expected a json object, got {type(d).__name__}")
        if d.get("model_type") != cls.MODEL_TYPE:
            raise ValueError(f"model_type is {d.get('model_type')!r}; a frame-linear VAE has {cls.MODEL_TYPE!r}")
        unknown = sorted(set(d) - _JSON_KEYS)
        if unknown:
            raise ValueError(f"unknown keys {unknown}; a frame-linear VAE json has {sorted(_JSON_KEYS)}")
        missing = [k for k in _REQUIRED_KEYS if k not in d]
        if missing:
            raise ValueError(f"missing keys {missing} (required: {list(_REQUIRED_KEYS)})")
        return cls(
            sample_rate=d["sample_rate"],
            hop=d["hop"],
            latent_dim=d["latent_dim"],
            io_channels=d.get("io_channels", 2),
            posterior_std=d.get("posterior_std", 0.0),
            basis=None if d.get("basis") is None else str(d["basis"]),
        )

    @classmethod
    def from_json(cls, path: str | Path) -> FrameLinearConfig:
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON (line {err.lineno}, column {err.colno}): {err.msg}") from err
        try:
            return cls.from_dict(raw)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=4) + "\n", encoding="utf-8")


def sinusoid_harmonics(latent_dim: int, sample_rate: int, hop: int, seed: int) -> list[int]:
    """The seed's choice of ``ceil(latent_dim / 2)`` distinct harmonics k of the frame rate, ascending.

    k cycles per frame (k x frame rate Hz) keeps every sinusoid whole in each frame, so cos/sin pairs of distinct
    k are orthogonal there and a sustained tone encodes to the same latent in every frame. k is drawn from the
    80 Hz - 2 kHz band; when the band holds too few harmonics, from every k in 1 .. hop/2 - 1.
    """
    pairs = (latent_dim + 1) // 2
    top = hop // 2 - 1  # k = hop/2 has no sine part (Nyquist); k = 0 is DC
    frame_rate = sample_rate / hop
    lo, hi = max(1, math.ceil(SINUSOID_MIN_HZ / frame_rate)), min(top, math.floor(SINUSOID_MAX_HZ / frame_rate))
    if hi - lo + 1 < pairs:
        lo, hi = 1, top
    if hi - lo + 1 < pairs:
        raise ValueError(
            f"latent_dim {latent_dim} needs {pairs} harmonics of the frame rate below Nyquist; hop {hop} has {top}"
        )
    gen = torch.Generator().manual_seed(int(seed))
    picks = torch.randperm(hi - lo + 1, generator=gen)[:pairs] + lo
    return sorted(int(k) for k in picks)


def sinusoid_basis(latent_dim: int, hop: int, io_channels: int, harmonics: list[int]) -> torch.Tensor:
    """Orthonormal rows [latent_dim, io_channels * hop] (float64): cos/sin of each harmonic, equal on every channel.

    Equal channels make a mono signal (repeated to every channel, as the VAEs do) round-trip exactly.
    """
    n = torch.arange(hop, dtype=torch.float64)
    rows = []
    for k in harmonics:
        phase = 2 * math.pi * k * n / hop
        rows += [torch.cos(phase), torch.sin(phase)]
    q, r = torch.linalg.qr(torch.stack(rows[:latent_dim]).T)  # already orthogonal: QR only removes rounding
    one_channel = (q * torch.sign(torch.diagonal(r))).T  # keep each row's sign (cos rows start positive)
    # channel-major [ch0 samples | ch1 samples | ...], the same on every channel, unit norm over all of them
    return (one_channel.repeat(1, io_channels) / math.sqrt(io_channels)).contiguous()


class FrameLinearVAE(WaveformVAE):
    """Encoder ``Linear(io_channels * hop -> latent_dim)`` and decoder ``Linear(latent_dim -> io_channels * hop)``
    applied to each frame; state-dict keys ``encoder.weight`` / ``decoder.weight``.

    Shapes as for OobleckVAE: waveforms (B, C, T), latents (B, latent_dim, F) with F = T // hop.
    """

    def __init__(self, cfg: FrameLinearConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = nn.Linear(cfg.frame_size, cfg.latent_dim, bias=False)
        self.decoder = nn.Linear(cfg.latent_dim, cfg.frame_size, bias=False)

    @classmethod
    def sinusoidal(
        cls,
        latent_dim: int = 8,
        sample_rate: int = 48000,
        hop: int = 1920,
        io_channels: int = 2,
        seed: int = 0,
        *,
        gain: float = 1.0,
        posterior_std: float = 0.0,
    ) -> FrameLinearVAE:
        """An exactly invertible VAE on a seeded basis of windowless sinusoids (see :func:`sinusoid_harmonics`).

        Encoder = ``gain`` x the orthonormal basis, decoder = its transpose / ``gain``; ``gain`` only scales the
        latents (an orthonormal basis gives latents of about amplitude x sqrt(io_channels x hop / 2)).
        """
        if not math.isfinite(gain) or gain <= 0:
            raise ValueError(f"gain must be a positive number, got {gain!r}")
        harmonics = sinusoid_harmonics(latent_dim, sample_rate, hop, seed)
        frame_rate = sample_rate / hop
        hz = ", ".join(f"{k * frame_rate:g}" for k in harmonics)
        basis = f"sinusoidal seed={seed} gain={gain:g}: cos/sin at {hz} Hz (harmonics {harmonics} of the frame rate)"
        cfg = FrameLinearConfig(sample_rate, hop, latent_dim, io_channels, posterior_std, basis)
        vae = cls(cfg)
        w = sinusoid_basis(latent_dim, hop, io_channels, harmonics)
        with torch.no_grad():
            vae.encoder.weight.copy_((w * gain).float())
            vae.decoder.weight.copy_((w.T / gain).float())
        return vae.eval().requires_grad_(False)  # a fixed transform: nothing to train

    # --- geometry (the names OobleckVAE has)
    @property
    def sample_rate(self) -> int:
        return self.cfg.sample_rate

    @property
    def downsampling_ratio(self) -> int:
        return self.cfg.hop

    @property
    def latent_dim(self) -> int:
        return self.cfg.latent_dim

    @property
    def io_channels(self) -> int:
        return self.cfg.io_channels

    @property
    def in_channels(self) -> int:
        return self.cfg.io_channels

    @property
    def out_channels(self) -> int:
        return self.cfg.io_channels

    @property
    def frame_rate(self) -> float:
        return self.cfg.frame_rate

    # --- encode
    def encode_moments(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, pre-softplus scale), each (B, latent_dim, T // hop); samples short of a frame are dropped.

        As with OobleckVAE, ``posterior_std(scale)`` is the deviation: ``cfg.posterior_std``, at least 1e-4."""
        x = self._as_encoder_input(wav)
        batch, channels, samples = x.shape
        frames = samples // self.cfg.hop
        x = x[:, :, : frames * self.cfg.hop].reshape(batch, channels, frames, self.cfg.hop)
        x = x.permute(0, 2, 1, 3).reshape(batch, frames, channels * self.cfg.hop)
        with torch.autocast(device_type=x.device.type, enabled=False):
            mean = self.encoder(x).transpose(1, 2).contiguous()
        return mean, torch.full_like(mean, scale_for_std(self.cfg.posterior_std))

    # --- decode
    def decode(
        self, latent: torch.Tensor, chunked: bool = False, chunk_size: int = 128, overlap: int = 32
    ) -> torch.Tensor:
        """Latent (B, latent_dim, F) -> waveform (B, io_channels, F * hop), float32.

        Frames are decoded independently, so ``chunked`` (checked like OobleckVAE's) gives the one-pass result.
        """
        if latent.ndim != 3 or latent.shape[1] != self.latent_dim:
            raise ValueError(f"VAE decode expects a latent (B, {self.latent_dim}, F), got shape {tuple(latent.shape)}")
        if chunked:
            check_chunking(chunk_size, overlap)
        batch, frames = latent.shape[0], latent.shape[2]
        channels, hop = self.out_channels, self.cfg.hop
        with torch.autocast(device_type=latent.device.type, enabled=False):
            x = self.decoder(latent.float().transpose(1, 2))  # (B, F, C * hop)
        x = x.reshape(batch, frames, channels, hop).permute(0, 2, 1, 3)
        return x.reshape(batch, channels, frames * hop)

    def fold_weight_norm(self, enabled: bool = True) -> FrameLinearVAE:
        """Nothing to fold (no weight norm); kept so callers can treat every VAE alike."""
        return self
