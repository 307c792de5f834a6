"""One encoded segment -> one shard sample: its lyric window, arrays, metadata, write-time checks, audio blobs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from songbloom.data.audio import flac_bytes
from songbloom.data.lyrics import TokenSection, in_window, window_lyric_ids, window_vocals
from songbloom.data.manifest import SongRecord
from songbloom.data.preprocess.config import PreprocessConfig
from songbloom.data.preprocess.inputs import SongAudio, SongLyrics
from songbloom.data.preprocess.report import SampleError
from songbloom.data.preprocess.segments import EncodedSegment
from songbloom.data.shards import encode_sample
from songbloom.licences import canonical_licence

Sample = tuple[str, dict[str, Any], dict[str, Any]]
"""``(key, encoded sample, shard-index info)``, ready for the shard writer."""


@dataclass(frozen=True)
class SampleSlot:
    """Where a segment's sample goes: its place in the song, its key, its first latent frame, its split."""

    index: int
    num_segments: int
    key: str
    start: int
    name: str  # "segment i (a-b s)", the prefix of its problems
    split: str


def validate_sample(arrays: dict[str, np.ndarray], meta: dict[str, Any], num_pitch: int, vocab_size: int) -> None:
    """Write-time checks: what training would otherwise discover mid-run (or never); raises :class:`SampleError`."""
    problem = sample_problem(arrays, meta, num_pitch, vocab_size)
    if problem is not None:
        raise SampleError(*problem)


def sample_problem(
    arrays: dict[str, np.ndarray], meta: dict[str, Any], num_pitch: int, vocab_size: int
) -> tuple[str, str] | None:
    """The first failed write-time check as ``(reason, kind)``, or None for a good sample."""
    mean, scale, sketch = arrays["latent_mean"], arrays["latent_scale"], arrays["sketch"]
    if mean.ndim != 2 or mean.shape != scale.shape:
        return f"latent mean {mean.shape} and scale {scale.shape} must both be [D, frames]", "shape"
    if sketch.shape != (mean.shape[1],):
        return f"{mean.shape[1]} latent frames but {sketch.shape[0]} sketch tokens", "length_mismatch"
    if mean.shape[1] < meta["block_size"]:
        return f"{mean.shape[1]} frames is shorter than one block ({meta['block_size']})", "too_short"
    for name in ("latent_mean", "latent_scale", "prompt_mean", "prompt_scale"):
        if not np.isfinite(arrays[name]).all():
            return f"{name} has NaN/Inf values (damaged audio or an unstable encoder)", "nan_latent"
    if sketch.size and (sketch.min() < 0 or sketch.max() >= num_pitch):
        return f"sketch ids span [{sketch.min()}, {sketch.max()}] but must be in [0, {num_pitch})", "token_range"
    ids = arrays["lyric_ids"]
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        return f"lyric ids span [{ids.min()}, {ids.max()}] outside the vocabulary of {vocab_size}", "token_range"
    if ids.size == 0 and not meta["instrumental"]:
        return "no lyric tokens for this segment and the song is not instrumental", "empty_lyrics"
    return None


def segment_lyrics(
    lyrics: SongLyrics, start_s: float, end_s: float, seconds_per_tag: float
) -> tuple[list[TokenSection] | None, list[int]]:
    """The segment's sections (times relative to its start) and lyric ids; untimed lyrics go whole.

    The sections are those with something in the segment by the window rule of :mod:`songbloom.data.lyrics`
    (lines by their midpoint, non-vocal sections by overlap), each vocal one with only its lines inside."""
    if not lyrics.timed:
        return None, list(lyrics.song_ids)
    seg_sections = []
    for t in lyrics.tok_sections:
        rel = t.shifted(start_s)
        if not rel.window_part(0.0, end_s - start_s, seconds_per_tag):
            continue
        if rel.lines:
            inside = tuple(ln for ln in rel.lines if in_window(ln.start, ln.end, 0.0, end_s - start_s))
            ids = rel.head_ids + tuple(i for ln in inside for i in ln.ids)
            rel = TokenSection(rel.tag, inside[0].start, inside[-1].end, ids, inside)
        seg_sections.append(rel)
    return seg_sections, window_lyric_ids(seg_sections, 0.0, end_s - start_s, seconds_per_tag, lyrics.sep_ids)


def segment_vocals(seg_sections: list[TokenSection] | None, duration_s: float) -> dict[str, Any]:
    """What the segment sings: timed lines and seconds of vocals inside it (None for untimed lyrics)."""
    if seg_sections is None:
        return {"lyric_lines": None, "vocal_seconds": None}
    lines, seconds = window_vocals(seg_sections, 0.0, duration_s)
    return {"lyric_lines": lines, "vocal_seconds": round(seconds, 3)}


def build_sample(
    rec: SongRecord,
    cfg: PreprocessConfig,
    audio: SongAudio,
    lyrics: SongLyrics,
    seg: EncodedSegment,
    slot: SampleSlot,
    num_pitch: int,
    vocab_size: int,
) -> Sample:
    """Arrays, metadata and blobs of one segment, checked like :func:`validate_sample` (raises SampleError)."""
    fps, n, key = audio.fps, seg.frames, slot.key
    np_dtype = np.float16 if cfg.latent_dtype == "float16" else np.float32
    start_s, end_s = slot.start / fps, slot.start / fps + n / fps
    seg_sections, ids = segment_lyrics(lyrics, start_s, end_s, cfg.seconds_per_tag)
    vocals = segment_vocals(seg_sections, end_s - start_s)
    if len(ids) > cfg.lyric_max_len:
        raise SampleError(
            f"{slot.name}: {len(ids)} lyric tokens but the model reads {cfg.lyric_max_len}; the segment would be "
            "trained on lyrics cut short (give the song line timing, e.g. LRC or sections with lines, or a shorter "
            "--segment-seconds)",
            "lyrics_too_long",
            field="lyrics",
        )
    arrays = {
        "latent_mean": seg.mean.astype(np_dtype),
        "latent_scale": seg.scale.astype(np_dtype),
        "sketch": seg.sketch.astype(np.int32),
        "lyric_ids": np.asarray(ids, dtype=np.int32),
        "prompt_mean": seg.prompt_mean.astype(np.float32),
        "prompt_scale": seg.prompt_scale.astype(np.float32),
    }
    meta = {
        "idx": rec.idx,
        "song_id": rec.song_id,
        "key": key,
        "segment": slot.index,
        "num_segments": slot.num_segments,
        "split": slot.split,
        "start_s": round(start_s, 4),
        "duration_s": round(n / fps, 4),
        "frames": n,
        "frame_rate": fps,
        "block_size": cfg.block_size,
        "seconds_per_tag": cfg.seconds_per_tag,
        "language": rec.language,
        "license": rec.license,
        "instrumental": rec.instrumental,
        "lyrics_raw": rec.lyrics,
        "lyrics_processed": lyrics.processed_text,
        "lyrics_timed": lyrics.timed,
        "sections": None if seg_sections is None else [t.to_json() for t in seg_sections],
        "separator_ids": lyrics.sep_ids,
        "dropped_lyric_items": sorted(set(lyrics.dropped)),
        "lyrics_truncated": False,  # a segment with more lyric tokens than lyric_max_len is skipped instead
        **vocals,
        "prompt": {
            **seg.prompt_info,
            "seconds": round(seg.prompt.shape[-1] / audio.sample_rate, 4),
            "frames": int(seg.prompt_mean.shape[-1]),
        },
        "audio": {
            "path": rec.audio_path,
            "orig_sample_rate": audio.orig_sample_rate,
            "orig_channels": audio.orig_channels,
        },
        "extra": rec.extra,
    }
    problem = sample_problem(arrays, meta, num_pitch, vocab_size)
    if problem is not None:
        reason, kind = problem
        raise SampleError(f"{slot.name}: {reason}", kind, file=rec.audio_path)
    info = {
        "key": key,
        "idx": rec.idx,
        "song_id": rec.song_id,
        "segment": slot.index,
        "num_segments": slot.num_segments,
        "duration_s": meta["duration_s"],
        "frames": n,
        "lyric_tokens": len(ids),
        **vocals,
        "licence": canonical_licence(rec.license),
        "prompt": seg.prompt_info["rule"],  # file | outside | inside_fallback (the target's own audio)
    }
    return key, encode_sample(key, arrays, meta, _blobs(cfg, audio, seg)), info


def _blobs(cfg: PreprocessConfig, audio: SongAudio, seg: EncodedSegment) -> dict[str, bytes]:
    blobs = {}
    if cfg.store_prompt_audio:
        blobs["prompt.flac"] = flac_bytes(seg.prompt[0], audio.sample_rate)
    if cfg.store_audio:
        blobs["audio.flac"] = flac_bytes(seg.wav[:, : seg.frames * audio.ratio], audio.sample_rate)
    return blobs
