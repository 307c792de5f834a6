"""Cutting a song into block-aligned segments and encoding one segment (VAE moments, sketch tokens, prompt)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from songbloom.data.audio import is_silent
from songbloom.data.encoders import Encoders
from songbloom.data.manifest import SongRecord
from songbloom.data.preprocess.config import PreprocessConfig
from songbloom.data.preprocess.inputs import SongAudio
from songbloom.data.preprocess.prompt_source import segment_prompt
from songbloom.data.preprocess.report import SampleError
from songbloom.data.shards import sample_key


@dataclass
class SegmentLayout:
    """The song's segments in latent frames: ``bounds[i] = (start, end)``, with their sample keys."""

    bounds: list[tuple[int, int]]
    keys: list[str]

    @property
    def count(self) -> int:
        return len(self.bounds)


@dataclass
class EncodedSegment:
    """One segment's encodings, cut to the frames latent and sketch share."""

    mean: np.ndarray  # [D, n]
    scale: np.ndarray
    sketch: np.ndarray  # [n] int64
    prompt: torch.Tensor  # (1, 1, T)
    prompt_info: dict
    prompt_mean: np.ndarray  # [D, prompt frames]
    prompt_scale: np.ndarray
    wav: torch.Tensor  # the segment's audio

    @property
    def frames(self) -> int:
        return int(self.mean.shape[-1])


def plan_segments(rec: SongRecord, cfg: PreprocessConfig, audio: SongAudio, timed: bool) -> SegmentLayout:
    """Equal block-aligned segments of at most ``segment_seconds`` for a timed song; an untimed one stays whole."""
    frames, fps = audio.frames, audio.fps
    seg_frames = max(cfg.block_size, int(cfg.segment_seconds * fps) // cfg.block_size * cfg.block_size)
    if frames > seg_frames and not timed and not cfg.keep_untimed_long:
        raise SampleError(
            f"{audio.duration:.1f} s is longer than segment_seconds={cfg.segment_seconds} and the lyrics "
            "have no section timestamps, so they cannot follow the segments; add 'sections' or "
            "pass --keep-untimed-long",
            "untimed_long",
            field="sections",
        )
    n_seg = 1 if (frames <= seg_frames or not timed) else math.ceil(frames / seg_frames)
    seg_len = frames if n_seg == 1 else math.ceil(frames / n_seg / cfg.block_size) * cfg.block_size
    bounds = [(i * seg_len, min((i + 1) * seg_len, frames)) for i in range(n_seg)]
    return SegmentLayout(bounds, [sample_key(rec.idx, i) for i in range(n_seg)])


def segment_name(audio: SongAudio, seg: tuple[int, int], i: int) -> str:
    s, e = seg
    return f"segment {i} ({s / audio.fps:.1f}-{e / audio.fps:.1f} s)"


def encode_segment(
    rec: SongRecord,
    enc: Encoders,
    cfg: PreprocessConfig,
    audio: SongAudio,
    seg: tuple[int, int],
    seg_name: str,
    song_tokens: np.ndarray | None,
    file_prompt: torch.Tensor | None,
) -> EncodedSegment:
    """Encode segment ``seg`` (latent frames); a silent segment or a failing encoder raises :class:`SampleError`."""
    s, e = seg
    ratio, sr = audio.ratio, audio.sample_rate
    seg_wav = audio.wav[:, s * ratio : e * ratio]
    if is_silent(seg_wav, cfg.silence_db):
        raise SampleError(f"{seg_name} is silence-only", "silence", file=rec.audio_path)
    try:
        span = (s * ratio, e * ratio)
        prompt, prompt_info = segment_prompt(rec, file_prompt, audio.wav, span, sr, cfg.prompt_seconds)
        mean, scale = enc.latent.encode_moments(seg_wav.unsqueeze(0))
        p_mean, p_scale = enc.latent.encode_moments(prompt)
        if song_tokens is not None:
            sketch = song_tokens[s:e]
        else:
            sketch = enc.sketch.tokenize(seg_wav.mean(0, keepdim=True), sr).reshape(-1).cpu().numpy()
    except Exception as ex:  # an encoder crash on one item is reported, the batch goes on
        raise SampleError(
            f"{seg_name}: encoding failed: {type(ex).__name__}: {ex}", "encode_error", file=rec.audio_path
        ) from None
    mean, scale = mean[0].numpy(), scale[0].numpy()
    n = mean.shape[-1]
    if abs(len(sketch) - n) > cfg.length_tolerance:
        raise SampleError(
            f"{seg_name}: latent has {n} frames but sketch has {len(sketch)}", "length_mismatch", file=rec.audio_path
        )
    n = min(n, len(sketch))
    return EncodedSegment(
        mean=mean[:, :n],
        scale=scale[:, :n],
        sketch=np.asarray(sketch[:n], dtype=np.int64),
        prompt=prompt,
        prompt_info=prompt_info,
        prompt_mean=p_mean[0].numpy(),
        prompt_scale=p_scale[0].numpy(),
        wav=seg_wav,
    )
