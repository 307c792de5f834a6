"""The three encoders preprocessing needs, as small injected interfaces, plus adapters to our modules.

Preprocessing only sees :class:`LatentEncoder`, :class:`SketchEncoder` and :class:`LyricsProcessor`, so tests
use tiny deterministic stand-ins and the real VAE, sketch tokenizer and text front end plug in through the
adapters below, which import their modules only when built. Every encoder carries a fingerprint that goes
into the shard index: a shard set always says which weights, codebook and lyric rules produced it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch

from songbloom.text.vocab import Vocabulary

logger = logging.getLogger(__name__)

LYRIC_POLICIES = ("error", "warn", "drop")


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def module_fingerprint(module: torch.nn.Module) -> str:
    """sha256 over a module's state dict (names, shapes and values): identifies random-weight encoders."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().float().numpy().tobytes())
    return h.hexdigest()


@runtime_checkable
class LatentEncoder(Protocol):
    """Audio -> VAE posterior moments. ``wav`` is [B, C, T] at ``sample_rate``; outputs are [B, D, T // ratio]."""

    sample_rate: int
    downsampling_ratio: int
    fingerprint: str

    def encode_moments(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


@runtime_checkable
class SketchEncoder(Protocol):
    """Audio -> sketch token ids at the latent frame rate (``T_48k // 1920`` frames)."""

    num_codes: int
    codebook_hash: str

    def tokenize(self, wav: torch.Tensor, sr: int) -> torch.Tensor: ...


@dataclass
class ProcessedLyrics:
    """A processed (phoneme) lyric string, its vocabulary ids, what was dropped, and whether it overflowed."""

    text: str
    ids: list[int]
    dropped: list[str] = field(default_factory=list)
    truncated: bool = False


class LyricsError(ValueError):
    """Lyrics that the configured policy refuses (out-of-vocabulary items with policy 'error', ...)."""


@runtime_checkable
class LyricsProcessor(Protocol):
    """Release-format lyrics -> processed string + ids. ``vocabulary`` gives tag and separator ids."""

    vocabulary: Vocabulary
    fingerprint: str

    def process(self, text: str, language: str | None = None) -> ProcessedLyrics: ...


def _apply_policy(
    processed: str, vocab: Vocabulary, policy: str, max_len: int | None, unreadable: list[str] | None = None
) -> ProcessedLyrics:
    tok = vocab.tokenize(processed)
    dropped = list(unreadable or []) + [d for d in tok.dropped]
    if dropped:
        parts = []
        if unreadable:
            parts.append(f"text the front end cannot read {unreadable[:10]}")
        if tok.dropped:
            parts.append(f"{len(tok.dropped)} out-of-vocabulary lyric items {sorted(set(tok.dropped))[:10]}")
        msg = "; ".join(parts)
        if policy == "error":
            raise LyricsError(msg + " (fix the lyrics, or pass --lyrics-policy warn/drop to drop them)")
        if policy == "warn":
            logger.warning("%s dropped", msg)
    truncated = max_len is not None and len(tok.ids) > max_len
    return ProcessedLyrics(processed, list(tok.ids), dropped, truncated)


class PhonemeLyricsProcessor:
    """For lyrics already in processed (phoneme) form: tokenize with the vocabulary and apply the policy."""

    def __init__(self, vocabulary: Vocabulary | None = None, policy: str = "error", max_len: int | None = None):
        if policy not in LYRIC_POLICIES:
            raise ValueError(f"lyrics policy {policy!r}: choose from {LYRIC_POLICIES}")
        self.vocabulary = vocabulary or Vocabulary.default()
        self.policy = policy
        self.max_len = max_len
        self.fingerprint = (
            "phoneme-passthrough:" + hashlib.sha256("\n".join(self.vocabulary.items).encode()).hexdigest()[:16]
        )

    def process(self, text: str, language: str | None = None) -> ProcessedLyrics:
        processed = " ".join(text.split())
        return _apply_policy(processed, self.vocabulary, self.policy, self.max_len)


class TextFrontendLyricsProcessor:
    """Adapter to ``songbloom.text.process_lyrics`` (G2P for zh/en/ja), imported when built."""

    def __init__(self, vocabulary: Vocabulary | None = None, policy: str = "error", max_len: int | None = None):
        if policy not in LYRIC_POLICIES:
            raise ValueError(f"lyrics policy {policy!r}: choose from {LYRIC_POLICIES}")
        from songbloom.text import process_lyrics

        self._process = process_lyrics
        self.vocabulary = vocabulary or Vocabulary.default()
        self.policy = policy
        self.max_len = max_len
        self.fingerprint = "text-frontend:" + hashlib.sha256("\n".join(self.vocabulary.items).encode()).hexdigest()[:16]

    def process(self, text: str, language: str | None = None) -> ProcessedLyrics:
        """G2P and tokenize; text the front end cannot read (Hangul, emoji, ...) counts as dropped, like tokens
        outside the vocabulary, and the policy applies to both (``error``: the song is skipped with the reason)."""
        from songbloom.text.g2p import detect_language
        from songbloom.text.scripts import unreadable_runs

        language = language or detect_language(text)
        processed = self._process(text, language=language)
        unreadable = unreadable_runs(text, language)
        return _apply_policy(processed, self.vocabulary, self.policy, self.max_len, unreadable)


class VAELatentEncoder:
    """Adapter around a VAE (``OobleckVAE`` or the frame-linear proxy; fp32, no grad)."""

    def __init__(self, vae: torch.nn.Module, fingerprint: str | None = None, device: str = "cpu"):
        self.vae = vae.eval().to(device)
        self.device = device
        cfg = getattr(vae, "cfg", None) or getattr(vae, "config", None)
        self.sample_rate = int(getattr(cfg, "sample_rate", 48000))
        self.downsampling_ratio = int(getattr(cfg, "downsampling_ratio", 1920))
        self.fingerprint = fingerprint or ("random:" + module_fingerprint(vae))

    @classmethod
    def from_files(cls, config_path: str | Path, ckpt_path: str | Path | None = None, device: str = "cpu"):
        from songbloom.checkpoints.vae import load_vae
        from songbloom.models.vae_factory import vae_config_from_json

        cfg = vae_config_from_json(config_path)  # any VAE kind its model_type names
        vae = load_vae(cfg, ckpt_path, map_location="cpu")
        fp = f"ckpt:{file_sha256(ckpt_path)}" if ckpt_path else None
        enc = cls(vae, fingerprint=fp, device=device)
        if ckpt_path:  # the released VAE's terms are on its model card; songbloom.licences records them as unknown
            from songbloom.licences import UNKNOWN, licence_record

            enc.licences = [licence_record(f"VAE weights used for the latents ({Path(ckpt_path).name})", UNKNOWN)]
        return enc

    @classmethod
    def random(cls, preset: str = "release", seed: int = 0, device: str = "cpu"):
        """Random weights with the release (or tiny) geometry: for benchmarks and demos."""
        from songbloom.models.vae import OobleckVAE, VAEConfig

        torch.manual_seed(seed)
        cfg = VAEConfig.release() if preset == "release" else VAEConfig.tiny()
        return cls(OobleckVAE(cfg), device=device)

    @torch.no_grad()
    def encode_moments(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, scale = self.vae.encode_moments(wav.float().to(self.device))
        return mean.float().cpu(), scale.float().cpu()


class SketchTokenizerEncoder:
    """Adapter around ``songbloom.sketch.SketchTokenizer`` loaded from a codebook artifact."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.num_codes = int(tokenizer.num_codes)
        self.codebook_hash = str(tokenizer.codebook_hash)

    @classmethod
    def from_artifact(cls, codebook_path: str | Path, muq=None):
        from songbloom.sketch import SketchTokenizer

        return cls(SketchTokenizer.from_artifact(codebook_path, muq=muq))

    @torch.no_grad()
    def tokenize(self, wav: torch.Tensor, sr: int) -> torch.Tensor:
        return self.tokenizer.tokenize(wav, sr)


@dataclass
class Encoders:
    """The injected encoders preprocessing runs: VAE moments, lyric ids, and (optionally) sketch tokens."""

    latent: LatentEncoder
    lyrics: LyricsProcessor
    sketch: SketchEncoder | None = None


@dataclass
class EncoderSpec:
    """Picklable recipe for :class:`Encoders`, so each preprocessing process builds its own copy.

    ``vae_random`` ("release" or "tiny") builds random weights with that geometry, for demos and benchmarks.
    """

    vae_config: str | None = None
    vae_ckpt: str | None = None
    vae_random: str | None = None
    codebook: str | None = None
    lyrics_processor: str = "text"  # "text" (G2P front end) or "phoneme" (lyrics already phonemes)
    lyrics_policy: str = "error"
    lyric_max_len: int | None = 600
    device: str = "cpu"

    def __call__(self) -> Encoders:
        from songbloom.building.devices import preprocessing_devices

        # MPS: the VAE runs there, MuQ (sketch tokens) on the CPU; SketchTokenizer defaults to the CPU anyway.
        vae_device, _, _ = preprocessing_devices(self.device)
        if self.vae_config:
            latent = VAELatentEncoder.from_files(self.vae_config, self.vae_ckpt, vae_device)
        elif self.vae_random:
            latent = VAELatentEncoder.random(self.vae_random, device=vae_device)
        else:
            raise ValueError("no VAE: pass --vae-config (and --vae-ckpt), or --vae-random release|tiny for a demo")
        if self.lyrics_processor == "phoneme":
            lyrics = PhonemeLyricsProcessor(policy=self.lyrics_policy, max_len=self.lyric_max_len)
        elif self.lyrics_processor == "text":
            lyrics = TextFrontendLyricsProcessor(policy=self.lyrics_policy, max_len=self.lyric_max_len)
        else:
            raise ValueError(f"lyrics processor {self.lyrics_processor!r}: choose text or phoneme")
        sketch = SketchTokenizerEncoder.from_artifact(self.codebook) if self.codebook else None
        return Encoders(latent=latent, lyrics=lyrics, sketch=sketch)
