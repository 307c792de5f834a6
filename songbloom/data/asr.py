"""Lyrics for songs that have none: a local Whisper model (``transformers``) with segment timestamps.

Whisper emits timestamp tokens around each segment; we turn them into timed lines and then into sections with
the same rule as LRC files (gaps become ``[intro]``/``[inst]``/``[outro]``), so the lyrics can follow crops.
Models are loaded from a local folder only (no download); tests use a tiny random Whisper.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from songbloom.data.audio import AudioError, load_audio
from songbloom.data.convert import AUDIO_SUFFIXES, finish_manifest, lrc_to_sections, timed_lyrics_fields
from songbloom.data.manifest import Problem

logger = logging.getLogger(__name__)

Segment = tuple[float, float, str]
ASR_RATE = 16000
TIME_STEP = 0.02  # seconds per Whisper timestamp token


def whisper_segments(
    ids: Sequence[int],
    timestamp_begin: int,
    decode: Callable[[list[int]], str],
    offset: float = 0.0,
    text_range: tuple[int, int] | None = None,
) -> list[Segment]:
    """Split a Whisper token sequence at timestamp tokens into (start, end, text) segments.

    Ids ``>= timestamp_begin`` are times (0.02 s steps); only ids in ``text_range`` (default: all below the
    timestamps; for real Whisper ``(0, eos_token_id)``) are text, other special tokens are ignored. A segment is
    the text between an opening and a closing timestamp.
    """
    lo, hi = text_range if text_range is not None else (0, timestamp_begin)
    out: list[Segment] = []
    start, words = None, []
    for i in ids:
        i = int(i)
        if i >= timestamp_begin:
            t = offset + (i - timestamp_begin) * TIME_STEP
            if start is None:
                start = t
            else:
                text = decode(words).strip() if words else ""
                if text and t > start:
                    out.append((start, t, text))
                start, words = None, []
        elif lo <= i < hi and start is not None:
            words.append(i)
    return out


class WhisperTranscriber:
    """Callable ``(mono wav, sr) -> segments`` over 30 s windows of a local Whisper model."""

    def __init__(
        self,
        model,
        feature_extractor,
        decode: Callable[[list[int]], str],
        timestamp_begin: int | None = None,
        text_range: tuple[int, int] | None = None,
        max_new_tokens: int = 128,
        window_seconds: float = 30.0,
    ):
        self.model = model.eval()
        self.fe = feature_extractor
        self.decode = decode
        gc = model.generation_config
        self.timestamp_begin = timestamp_begin if timestamp_begin is not None else gc.no_timestamps_token_id + 1
        self.text_range = text_range if text_range is not None else (0, int(gc.eos_token_id))
        self.max_new_tokens = max_new_tokens
        self.window = int(window_seconds * ASR_RATE)

    @classmethod
    def from_pretrained(cls, path: str | Path, **kw) -> WhisperTranscriber:
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        processor = WhisperProcessor.from_pretrained(path, local_files_only=True)
        model = WhisperForConditionalGeneration.from_pretrained(path, local_files_only=True)
        tok = processor.tokenizer
        return cls(
            model,
            processor.feature_extractor,
            lambda ids: tok.decode(ids, skip_special_tokens=True),
            text_range=(0, tok.eos_token_id),
            **kw,
        )

    @torch.no_grad()
    def __call__(self, wav: np.ndarray) -> list[Segment]:
        segments: list[Segment] = []
        for k in range(0, len(wav), self.window):
            chunk = wav[k : k + self.window]
            feats = self.fe(chunk, sampling_rate=ASR_RATE, return_tensors="pt").input_features
            ids = self.model.generate(feats, return_timestamps=True, max_new_tokens=self.max_new_tokens)
            ids = ids.sequences if hasattr(ids, "sequences") else ids
            segments += whisper_segments(
                ids[0].tolist(), self.timestamp_begin, self.decode, k / ASR_RATE, self.text_range
            )
        return segments


def convert_asr(
    folder: str | Path,
    out: str | Path,
    transcribe: Callable[[np.ndarray], list[Segment]],
    language: str | None = None,
    gap_seconds: float = 4.0,
    license: str | None = None,
) -> tuple[Path, list[Problem]]:
    """Transcribe every audio file in ``folder`` into a manifest with timed sections; report the failures."""
    folder = Path(folder)
    rows, problems = [], []
    for audio in sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES):
        try:
            loaded = load_audio(audio, ASR_RATE, 1)
        except AudioError as e:
            problems.append(Problem(str(audio), str(e), kind=e.kind))
            continue
        segs = [s for s in transcribe(loaded.wav[0].numpy()) if s[0] < loaded.seconds]
        entries = []
        for n, (start, end, text) in enumerate(segs):
            entries.append((start, text.replace(".", " ").strip()))
            nxt = segs[n + 1][0] if n + 1 < len(segs) else None
            if nxt is None or nxt - end >= gap_seconds:  # a pause long enough to become [inst]/[outro]
                entries.append((min(end, loaded.seconds), ""))
        sections = lrc_to_sections(entries, loaded.seconds, gap_seconds) if entries else []
        if not any(s.vocal for s in sections):
            problems.append(Problem(str(audio), "the ASR model recognised no lyrics", kind="no_lyrics"))
            continue
        idx = str(audio.relative_to(folder).with_suffix("")).replace("/", "__")
        row = {
            "idx": idx,
            "song_id": idx,
            "audio_path": str(audio.resolve()),
            "lyrics_source": "asr",
            **timed_lyrics_fields(sections),
        }
        if language:
            row["language"] = language
        row["license"] = license or "unknown"  # songbloom.licences: unknown terms are not cleared commercially
        rows.append(row)
    return finish_manifest(rows, problems, out)
