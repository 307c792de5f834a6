"""Style prompts: read the audio as the official ``infer.py`` does and encode it with the VAE.

Official steps: load, resample every channel to 48 kHz, average the channels (mono), cast to the generator
dtype (in bf16 mode the waveform is rounded to bf16 before the fp32 VAE:
docs/design/fidelity.md#prompt-bf16-rounding), keep the first 10 s, repeat mono to the VAE's input channels,
then SAMPLE the posterior. The official ``generate()`` encodes the null row's 10 s of zeros in the same batch
(docs/design/fidelity.md#null-prompt-vae-batch): it costs a whole VAE encoder pass and one extra posterior
noise draw. We never run the encoder on those zeros; ``exact_release_rng`` only
draws the same noise tensor so the RNG stream stays the official one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

PROMPT_LATENT_MODES = ("sample", "mean")


class PromptAudioError(ValueError):
    """A prompt file cannot be used (unreadable, empty, too short)."""


LOW_PROMPT_SAMPLE_RATE = 16000


def low_sample_rate_note(path: str | Path, sample_rate: int = 48000) -> str | None:
    """A warning when the prompt was recorded below 16 kHz: upsampling it adds no high frequencies."""
    import soundfile as sf

    try:
        sr = int(sf.info(str(path)).samplerate)
    except Exception:  # unreadable files are reported by load_prompt_audio
        return None
    if sr >= LOW_PROMPT_SAMPLE_RATE:
        return None
    return (
        f"prompt {path} has a low sample rate ({sr} Hz): it is upsampled to {sample_rate} Hz but holds nothing "
        f"above {sr // 2} Hz, so the style it gives is dull; use a recording at 44.1 kHz or more"
    )


def load_prompt_audio(path: str | Path, sample_rate: int = 48000, seconds: float = 10.0) -> torch.Tensor:
    """Read a prompt file -> (1, T) float32 mono at ``sample_rate``, at most ``seconds`` long."""
    import soundfile as sf
    import torchaudio.functional as AF

    path = Path(path)
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError / TypeError by format
        raise PromptAudioError(f"{path}: cannot read audio ({e}); convert it to WAV or FLAC") from e
    if data.shape[0] == 0:
        raise PromptAudioError(f"{path}: the audio file is empty")
    wav = torch.from_numpy(data.T.copy())  # (C, T)
    if sr != sample_rate:
        wav = AF.resample(wav, sr, sample_rate)
    wav = wav.mean(dim=0, keepdim=True)
    return wav[..., : int(seconds * sample_rate)]


@dataclass
class PromptMoments:
    """Posterior of one prompt (computed once per prompt, sampled once per generated song)."""

    mean: torch.Tensor  # (1, D, F)
    scale: torch.Tensor  # (1, D, F)


def prompt_moments(vae, wav: torch.Tensor, generator_dtype: torch.dtype = torch.float32) -> PromptMoments | None:
    """Encode a (1, T) mono prompt; ``None`` when it is shorter than the VAE's minimum (an empty latent)."""
    from songbloom.models.vae import MIN_ENCODE_SAMPLES

    if wav.shape[-1] < MIN_ENCODE_SAMPLES:
        return None
    device = next(vae.parameters()).device
    # The official infer.py casts the prompt to the generator dtype before the fp32 VAE
    # (docs/design/fidelity.md#prompt-bf16-rounding).
    wav = wav.to(generator_dtype).float().to(device)
    with torch.inference_mode():
        mean, scale = vae.encode_moments(wav[None] if wav.dim() == 2 else wav)
    return PromptMoments(mean, scale)


def sample_prompt_latent(
    vae,
    moments: PromptMoments | None,
    mode: str = "sample",
    *,
    generator: torch.Generator | None = None,
    exact_release_rng: bool = False,
) -> torch.Tensor | None:
    """(1, D, F) prompt latent: a posterior sample (official) or the mean.

    With ``exact_release_rng`` the noise is drawn for the [prompt, null] pair, (2, D, F), as the official
    batch encode does, and row 0 is used: the RNG then advances exactly as in the official run.
    """
    if mode not in PROMPT_LATENT_MODES:
        raise ValueError(f"prompt latent mode {mode!r}: choose from {PROMPT_LATENT_MODES}")
    if moments is None:
        return None
    if mode == "mean":
        return moments.mean
    mean = moments.mean
    rows = 2 if exact_release_rng else 1
    noise = torch.randn((rows, *mean.shape[1:]), dtype=mean.dtype, device=mean.device, generator=generator)[:1]
    return vae.sample(mean, moments.scale, noise)
