"""A synthetic song world where the true sketch ids are known: the CPU proxy of sketch-id recovery.

Songs are sequences of held notes. A note is a point of a palette in the VAE's latent space; a style (timbre)
scales the latent channels; the next note follows a sparse transition table, so an LM that learned the table
predicts the next id far better than one that sees the ids under a permutation. Audio is the latent decoded by
a per-frame linear VAE whose basis is a fixed burst of band-limited noise per channel, the bands tiling what
MuQ hears: every mel bin MuQ reads carries the amplitude of one channel, and decode -> encode returns the latent
exactly.
The ids of a song are *not* the notes: they come from a hidden tokenizer over MuQ features of the audio
(:mod:`songbloom.proxy.hidden`), as the released model's ids came from a tokenizer nobody published.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import torch

from songbloom.models.frame_vae import FrameLinearConfig, FrameLinearVAE

SAMPLE_RATE = 48000
HOP = 1920
LATENT_DIM = 8
# Channel c sounds in the band [BAND_EDGES_HZ[c], BAND_EDGES_HZ[c + 1]): log-spaced from the frame rate up to the
# Nyquist frequency of MuQ's 24 kHz input, so no mel bin is left empty.
BAND_EDGES_HZ = tuple(25.0 * (12000.0 / 25.0) ** (i / LATENT_DIM) for i in range(LATENT_DIM + 1))
BASIS_SEED = 0  # the noise bursts are part of the VAE's definition, not of a world
VAE_GAIN = 0.6  # latents of ~1 give audio peaks of ~0.5
LYRIC_CHARACTERS = "天地人你我他风花雪月山水春秋日夜歌心梦光云海星雨"


@dataclass
class WorldSettings:
    """The world's size and randomness. ``seed`` fixes the palette, transitions, styles and songs."""

    seed: int = 0
    num_notes: int = 64
    song_frames: int = 200  # 8 s at 25 Hz; a multiple of every block size used
    prompt_frames: int = 25
    styles: int = 4  # timbres the teacher learns
    new_styles: int = 2  # unseen timbres for the downstream fine-tune
    hold_frames: tuple[int, int] = (3, 8)  # a note lasts this many frames (inclusive)
    successors: tuple[float, ...] = (0.6, 0.3, 0.1)  # transition probabilities to each note's successors
    note_noise: float = 0.03
    style_spread: float = 0.1  # style gains are drawn from 1 +- style_spread

    def __post_init__(self) -> None:
        if self.num_notes < 2 or self.song_frames <= 0 or self.prompt_frames <= 0:
            raise ValueError("num_notes >= 2, song_frames > 0 and prompt_frames > 0 are required")
        if abs(sum(self.successors) - 1.0) > 1e-6 or len(self.successors) >= self.num_notes:
            raise ValueError(f"successors {self.successors} must sum to 1 and be fewer than num_notes")


@dataclass
class Song:
    """One synthetic song: notes and latents per frame, its audio, prompt latents and lyrics."""

    name: str
    style: int
    notes: torch.Tensor  # [F] long
    latents: torch.Tensor  # [C, F]
    audio: torch.Tensor  # [F * HOP] mono float32
    prompt_latents: torch.Tensor  # [C, Fp]
    prompt_audio: torch.Tensor  # [Fp * HOP]
    lyrics: str
    ids: torch.Tensor | None = None  # hidden-tokenizer ids, set by the hidden tokenizer
    extra: dict = field(default_factory=dict)


def band_noise_rows() -> torch.Tensor:
    """``[LATENT_DIM, HOP]`` orthonormal rows: per channel a fixed noise burst in its band, under a Hann window.

    Why noise bands and not pure tones: MuQ reads a log-mel spectrogram. Tones leave most mel bins empty, and the
    log of an empty bin is decided by rounding noise (an audio change of 1e-5 then moved nearly every hidden id),
    which no real codebook depends on and no model can render. Bands that tile the spectrum give every bin the
    level of one channel, so the features follow the latents.
    """
    gen = torch.Generator().manual_seed(BASIS_SEED)
    freqs = torch.fft.rfftfreq(HOP, 1.0 / SAMPLE_RATE, dtype=torch.float64)
    n = torch.arange(HOP, dtype=torch.float64)
    # Consecutive frames join without a step, so a change of note is not a broadband click.
    window = torch.sin(math.pi * n / HOP) ** 2
    rows = []
    for lo, hi in zip(BAND_EDGES_HZ[:-1], BAND_EDGES_HZ[1:], strict=True):
        in_band = ((freqs >= lo) & (freqs < hi)).to(torch.float64)
        # flat within the band, random phases: no bin of the band is left near-empty by chance
        phase = 2 * math.pi * torch.rand(freqs.shape, generator=gen, dtype=torch.float64)
        spectrum = torch.polar(in_band, phase)
        rows.append(window * torch.fft.irfft(spectrum, n=HOP))
    # The window spreads each band a little into its neighbours: make the rows exactly orthonormal.
    q, r = torch.linalg.qr(torch.stack(rows).T)
    return (q * torch.sign(torch.diagonal(r))).T.contiguous()


def proxy_vae() -> FrameLinearVAE:
    """The proxy VAE: stereo frames of 1920 samples <-> 8 band amplitudes, exactly invertible on its span."""
    rows = band_noise_rows()
    basis = rows.repeat(1, 2) / math.sqrt(2)  # the same on both channels, unit norm over the stereo frame
    bands = ", ".join(f"{lo:.0f}-{hi:.0f}" for lo, hi in zip(BAND_EDGES_HZ[:-1], BAND_EDGES_HZ[1:], strict=True))
    desc = f"proxy noise bands {bands} Hz, gain {VAE_GAIN}"
    vae = FrameLinearVAE(FrameLinearConfig(SAMPLE_RATE, HOP, LATENT_DIM, 2, 0.0, desc))
    with torch.no_grad():
        vae.encoder.weight.copy_((basis * VAE_GAIN).float())
        vae.decoder.weight.copy_((basis.T / VAE_GAIN).float())
    vae.requires_grad_(False)
    return vae.eval()


class SongWorld:
    """Palette, transitions and styles drawn from the settings' seed; songs drawn from their own seeds."""

    def __init__(self, settings: WorldSettings):
        self.settings = settings
        gen = torch.Generator().manual_seed(settings.seed)
        m = settings.num_notes
        self.palette = 0.25 + 1.25 * torch.rand(m, LATENT_DIM, generator=gen)
        self.successor_table = torch.stack([torch.randperm(m, generator=gen)[: len(settings.successors)]
                                            for _ in range(m)])
        total = settings.styles + settings.new_styles
        self.style_gains = 1.0 + settings.style_spread * (2 * torch.rand(total, LATENT_DIM, generator=gen) - 1)
        self.vae = proxy_vae()

    @property
    def teacher_styles(self) -> list[int]:
        return list(range(self.settings.styles))

    @property
    def new_styles(self) -> list[int]:
        return list(range(self.settings.styles, self.settings.styles + self.settings.new_styles))

    def note_sequence(self, frames: int, gen: torch.Generator) -> torch.Tensor:
        lo, hi = self.settings.hold_frames
        probs = torch.tensor(self.settings.successors)
        note = int(torch.randint(0, self.settings.num_notes, (1,), generator=gen))
        seq: list[int] = []
        while len(seq) < frames:
            seq += [note] * int(torch.randint(lo, hi + 1, (1,), generator=gen))
            note = int(self.successor_table[note, torch.multinomial(probs, 1, generator=gen)])
        return torch.tensor(seq[:frames])

    def latents_for(self, notes: torch.Tensor, style: int, gen: torch.Generator) -> torch.Tensor:
        z = self.palette[notes] * self.style_gains[style]
        z = z + self.settings.note_noise * torch.randn(z.shape, generator=gen)
        return z.T.contiguous()  # [C, F]

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """[C, F] -> mono audio [F * HOP] (the proxy VAE's channels are equal)."""
        return self.vae.decode(latents[None].float())[0].mean(0)

    def song(self, name: str, style: int, seed: int) -> Song:
        gen = torch.Generator().manual_seed(seed)
        s = self.settings
        notes = self.note_sequence(s.prompt_frames + s.song_frames, gen)
        z = self.latents_for(notes, style, gen)
        prompt, body = z[:, : s.prompt_frames], z[:, s.prompt_frames :]
        rnd = random.Random(seed)
        lines = ["".join(rnd.choice(LYRIC_CHARACTERS) for _ in range(rnd.randint(4, 7))) for _ in range(2)]
        lyrics = "[verse] " + ". ".join(lines)
        return Song(name, style, notes[s.prompt_frames :], body, self.decode(body), prompt, self.decode(prompt), lyrics)

    def songs(self, prefix: str, count: int, styles: list[int], seed: int) -> list[Song]:
        """``count`` songs cycling through ``styles``; song i is drawn from seed ``seed * 100003 + i``."""
        return [self.song(f"{prefix}{i:04d}", styles[i % len(styles)], seed * 100003 + i) for i in range(count)]
