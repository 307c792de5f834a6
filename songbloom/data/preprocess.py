"""Encode songs once into WebDataset shards: VAE moments, sketch tokens, lyric ids, prompt latents.

One call of :func:`run_preprocess` handles one SLURM array task (``task_index`` of ``num_tasks``): it takes
the songs whose id hashes to its task, skips the sample keys already in complete shards (so a killed run
continues without duplicates), encodes the rest in ``workers`` processes, and writes shards, a report of every
skipped item with file and reason, and the shard index with provenance (VAE, codebook, lyric rules, config).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import logging
import math
import multiprocessing as mp
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from songbloom.data.audio import AudioError, flac_bytes, is_silent, load_audio, prompt_from_wav
from songbloom.data.encoders import Encoders, LyricsError, LyricsProcessor
from songbloom.data.lyrics import TokenSection, check_release_lyrics, window_lyric_ids
from songbloom.data.manifest import Problem, Section, SongRecord, read_manifest
from songbloom.data.shards import (
    INDEX_NAME,
    ResumableShardWriter,
    atomic_write_json,
    completed_shards,
    encode_sample,
    sample_key,
)
from songbloom.licences import canonical_licence, data_licences, merge_licences, sketch_codebook_licences

logger = logging.getLogger(__name__)

PROMPT_RULES = ("auto", "outside", "file")
INDEX_FORMAT = "songbloom-shards/1"
PROVENANCE_NAME = "provenance.json"


@dataclass
class PreprocessConfig:
    """What preprocessing produces; everything here except the output folder goes into the provenance hash."""

    out_dir: str = "data/shards"
    sample_rate: int = 48000
    channels: int = 2
    block_size: int = 16
    seconds_per_tag: float = 1.0  # 1 s per non-vocal tag for the 150 s models, 5 s for the 240 s one
    segment_seconds: float = 150.0  # songs longer than this are cut into equal block-aligned segments
    min_seconds: float = 1.0
    prompt_seconds: float = 10.0
    # auto: the manifest's prompt_wav when given, else a clip of the same song outside the segment ('outside')
    prompt_rule: str = "auto"
    lyrics_policy: str = "error"
    lyric_max_len: int = 600
    num_pitch: int | None = None  # sketch ids must be < num_pitch; default: the codebook size, else 16384
    val_fraction: float = 0.0
    split_seed: int = 0
    length_tolerance: int = 0  # allowed |sketch frames - latent frames| before an item is rejected
    silence_db: float = -60.0
    min_sample_rate: int = 16000
    keep_untimed_long: bool = False  # keep songs longer than a segment that have no timestamps, whole
    store_prompt_audio: bool = True
    store_audio: bool = False
    latent_dtype: str = "float32"
    shard_maxcount: int = 64
    shard_maxsize: float = 5e8

    def __post_init__(self) -> None:
        problems = []
        if self.prompt_rule not in PROMPT_RULES:
            problems.append(f"prompt_rule={self.prompt_rule!r}: choose from {PROMPT_RULES}")
        if not 0.0 <= self.val_fraction < 1.0:
            problems.append(f"val_fraction={self.val_fraction} must be in [0, 1)")
        if self.seconds_per_tag <= 0 or self.segment_seconds <= 0 or self.prompt_seconds <= 0:
            problems.append("seconds_per_tag, segment_seconds and prompt_seconds must be positive")
        if self.latent_dtype not in ("float32", "float16"):
            problems.append(f"latent_dtype={self.latent_dtype!r}: choose float32 or float16")
        if problems:
            raise ValueError("invalid preprocessing config:\n  - " + "\n  - ".join(problems))

    def provenance_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in ("out_dir", "shard_maxcount", "shard_maxsize"):
            d.pop(k)
        return d


EncoderFactory = Callable[[], Encoders]


@dataclass
class PreprocessReport:
    written: int = 0
    skipped_existing: int = 0
    songs_done: int = 0
    problems: list[Problem] = field(default_factory=list)
    shards: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "written_samples": self.written,
            "already_done_samples": self.skipped_existing,
            "songs_done": self.songs_done,
            "skipped_count": len(self.problems),
            "skipped_by_kind": dict(Counter(p.kind for p in self.problems)),
            "skipped": [p.to_json() for p in self.problems],
            "new_shards": self.shards,
        }


class SampleError(ValueError):
    """A segment that failed validation at write time."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


def stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def resolve_task(task_index: int | None, num_tasks: int | None) -> tuple[int, int]:
    """Task from arguments, else from SLURM array variables (ids are made 0-based), else (0, 1)."""
    import os

    if num_tasks is None:
        num_tasks = int(os.environ.get("SLURM_ARRAY_TASK_COUNT", "1"))
    if task_index is None:
        tid = os.environ.get("SLURM_ARRAY_TASK_ID")
        task_index = int(tid) - int(os.environ.get("SLURM_ARRAY_TASK_MIN", "0")) if tid is not None else 0
    if not 0 <= task_index < num_tasks:
        raise ValueError(f"task index {task_index} is outside 0..{num_tasks - 1} (--task-index/--num-tasks)")
    return task_index, num_tasks


def provenance(cfg: PreprocessConfig, enc: Encoders) -> dict[str, Any]:
    num_pitch = effective_num_pitch(cfg, enc)
    prov = {
        "vae": {
            "fingerprint": enc.latent.fingerprint,
            "sample_rate": int(enc.latent.sample_rate),
            "downsampling_ratio": int(enc.latent.downsampling_ratio),
        },
        "sketch": None
        if enc.sketch is None
        else {"codebook_hash": enc.sketch.codebook_hash, "num_codes": int(enc.sketch.num_codes)},
        "num_pitch": num_pitch,
        "lyrics": {"fingerprint": enc.lyrics.fingerprint, "vocab_size": len(enc.lyrics.vocabulary)},
        "config": cfg.provenance_dict(),
    }
    prov["hash"] = hashlib.sha256(json.dumps(prov, sort_keys=True).encode()).hexdigest()
    # Outside the hash: the encoders' licences (MuQ weights behind the codebook) describe, not define, the shards.
    metadata = getattr(getattr(enc.sketch, "tokenizer", None), "metadata", None)
    prov["licences"] = merge_licences(
        sketch_codebook_licences(metadata if isinstance(metadata, dict) else None),
        getattr(enc.latent, "licences", None),  # VAE weights loaded from files (VAELatentEncoder.from_files)
    )
    return prov


def effective_num_pitch(cfg: PreprocessConfig, enc: Encoders) -> int:
    if enc.sketch is not None:
        if cfg.num_pitch is not None and enc.sketch.num_codes > cfg.num_pitch:
            raise ValueError(
                f"codebook has {enc.sketch.num_codes} codes but num_pitch={cfg.num_pitch}: sketch ids would not fit "
                "the model's embedding; use a model with num_pitch >= the codebook size"
            )
        return int(cfg.num_pitch or enc.sketch.num_codes)
    return int(cfg.num_pitch or 16384)


# ----------------------------------------------------------------------------------------------- per song
def _problem(rec: SongRecord, reason: str, kind: str, file: str | None = None, fld: str | None = None) -> Problem:
    src_file, _, line = rec.source.rpartition(":")
    return Problem(
        file=file or src_file or rec.audio_path,
        reason=reason,
        line=int(line) if line.isdigit() and file is None else None,
        field=fld,
        idx=rec.idx,
        kind=kind,
    )


def _load_sketch_file(path: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise SampleError(f"{path}: sketch file not found", "missing_file")
    try:
        if p.suffix == ".npy":
            arr = np.load(p, allow_pickle=False)
        elif p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                arr = z["sketch"] if "sketch" in z else z[z.files[0]]
        elif p.suffix == ".pt":
            obj = torch.load(p, map_location="cpu", weights_only=True)
            obj = obj["sketch"] if isinstance(obj, dict) else obj
            arr = torch.as_tensor(obj).numpy()
        else:
            raise SampleError(f"{path}: unknown sketch file type (use .npy, .npz or .pt)", "bad_field")
    except SampleError:
        raise
    except Exception as e:
        raise SampleError(f"{path}: cannot read sketch tokens ({e})", "decode_error") from None
    if not np.issubdtype(arr.dtype, np.integer):
        raise SampleError(f"{path}: sketch tokens must be integers, got {arr.dtype}", "bad_field")
    return arr.reshape(-1).astype(np.int64)


def _prompt_window(seg: tuple[int, int], total: int, need: int) -> tuple[int, str]:
    """Start sample of the prompt clip: the middle of the longest stretch outside the segment, or the song start."""
    s, e = seg
    regions = [(0, s), (e, total)]
    lo, hi = max(regions, key=lambda r: r[1] - r[0])
    if hi - lo >= need:
        return lo + (hi - lo - need) // 2, "outside"
    return 0, "inside_fallback"


def _token_sections(
    rec: SongRecord, sections: Sequence[Section], lyr: LyricsProcessor
) -> tuple[list[TokenSection], list[str], str]:
    out, dropped, texts = [], [], []
    for s in sections:
        text = f"[{s.tag}] {s.text}" if s.vocal else f"[{s.tag}]"
        res = lyr.process(text, rec.language)
        dropped += res.dropped
        texts.append(res.text)
        out.append(TokenSection(s.tag, s.start, s.end, tuple(res.ids)))
    return out, dropped, " , ".join(texts)


def process_song(
    rec: SongRecord,
    enc: Encoders,
    cfg: PreprocessConfig,
    num_pitch: int,
    split: str,
    skip_keys: set[str] | frozenset[str] = frozenset(),
):
    """Encode one song into validated samples. Returns ``(samples, problems, n_already_done)``.

    ``samples`` are ``(key, encoded_dict, info)`` tuples ready for the shard writer. A problem with the whole
    song returns no samples; a problem with one segment (silence, validation) skips only that segment.
    """
    ratio = int(enc.latent.downsampling_ratio)
    sr = int(enc.latent.sample_rate)
    fps = sr / ratio
    try:
        audio = load_audio(rec.audio_path, sr, cfg.channels, cfg.min_sample_rate, cfg.min_seconds)
    except AudioError as e:
        return [], [_problem(rec, str(e), e.kind, file=rec.audio_path)], 0
    if is_silent(audio.wav, cfg.silence_db):
        return (
            [],
            [_problem(rec, f"silence-only audio (peak under {cfg.silence_db} dBFS)", "silence", rec.audio_path)],
            0,
        )
    frames = audio.wav.shape[-1] // ratio
    if frames < cfg.block_size:
        return (
            [],
            [
                _problem(
                    rec,
                    f"{frames} latent frames is shorter than one block ({cfg.block_size})",
                    "too_short",
                    rec.audio_path,
                )
            ],
            0,
        )
    wav = audio.wav[:, : frames * ratio]
    duration = frames / fps

    # ---- lyrics: timed sections (crop-able) or one untimed string
    sections = rec.sections
    if sections is None and rec.instrumental and not (rec.lyrics or "").strip():
        sections = [Section("inst", 0.0, duration)]
    if sections is not None:
        if sections[-1].end > duration + 1.0:
            return (
                [],
                [
                    _problem(
                        rec,
                        f"last section ends at {sections[-1].end:.2f} s but the audio lasts {duration:.2f} s",
                        "bad_sections",
                        fld="sections",
                    )
                ],
                0,
            )
        if not rec.instrumental and not any(s.vocal for s in sections):
            return (
                [],
                [
                    _problem(
                        rec,
                        "no vocal section but the song is not marked instrumental",
                        "invalid_lyrics",
                        fld="sections",
                    )
                ],
                0,
            )
    else:
        why = check_release_lyrics(rec.lyrics, rec.instrumental)
        if why:
            kind = "empty_lyrics" if "empty" in why else "invalid_lyrics"
            return [], [_problem(rec, why, kind, fld="lyrics")], 0
    try:
        if sections is not None:
            tok_sections, dropped, processed_text = _token_sections(rec, sections, enc.lyrics)
            song_ids: list[int] = []
        else:
            res = enc.lyrics.process(rec.lyrics or "", rec.language)
            tok_sections, dropped, processed_text, song_ids = [], res.dropped, res.text, res.ids
    except LyricsError as e:
        return [], [_problem(rec, str(e), "oov_lyrics", fld="lyrics")], 0
    except Exception as e:  # a front-end failure on one song must not stop the batch
        return (
            [],
            [_problem(rec, f"lyrics processing failed: {type(e).__name__}: {e}", "invalid_lyrics", fld="lyrics")],
            0,
        )
    sep_ids = [enc.lyrics.vocabulary.index[","]] if "," in enc.lyrics.vocabulary else []

    # ---- segments
    seg_frames = max(cfg.block_size, int(cfg.segment_seconds * fps) // cfg.block_size * cfg.block_size)
    if frames > seg_frames and sections is None and not cfg.keep_untimed_long:
        return (
            [],
            [
                _problem(
                    rec,
                    f"{duration:.1f} s is longer than segment_seconds={cfg.segment_seconds} and the lyrics "
                    "have no section timestamps, so they cannot follow the segments; add 'sections' or "
                    "pass --keep-untimed-long",
                    "untimed_long",
                    fld="sections",
                )
            ],
            0,
        )
    n_seg = 1 if (frames <= seg_frames or sections is None) else math.ceil(frames / seg_frames)
    seg_len = frames if n_seg == 1 else math.ceil(frames / n_seg / cfg.block_size) * cfg.block_size
    bounds = [(i * seg_len, min((i + 1) * seg_len, frames)) for i in range(n_seg)]
    keys = [sample_key(rec.idx, i) for i in range(n_seg)]
    todo = [i for i in range(n_seg) if keys[i] not in skip_keys]
    if not todo:
        return [], [], n_seg

    # ---- sketch tokens: manifest (song level) or codebook (per segment)
    song_tokens = None
    try:
        if rec.sketch_tokens is not None:
            song_tokens = np.asarray(rec.sketch_tokens, dtype=np.int64)
        elif rec.sketch_path is not None:
            song_tokens = _load_sketch_file(rec.sketch_path)
    except SampleError as e:
        return [], [_problem(rec, str(e), e.kind, file=rec.sketch_path)], 0
    if song_tokens is None and enc.sketch is None:
        return (
            [],
            [
                _problem(
                    rec,
                    "no sketch tokens: give sketch_tokens/sketch_path or a codebook (--codebook)",
                    "no_sketch",
                    fld="sketch_tokens",
                )
            ],
            0,
        )
    if song_tokens is not None and abs(len(song_tokens) - frames) > cfg.length_tolerance:
        return (
            [],
            [
                _problem(
                    rec,
                    f"sketch has {len(song_tokens)} frames but the audio has {frames} latent frames "
                    f"(tolerance {cfg.length_tolerance})",
                    "length_mismatch",
                    fld="sketch_tokens",
                )
            ],
            0,
        )

    # ---- prompt from a file (same for every segment)
    rule = cfg.prompt_rule
    if rule == "auto":
        rule = "file" if rec.prompt_wav else "outside"
    file_prompt = None
    if rule == "file":
        if not rec.prompt_wav:
            return (
                [],
                [
                    _problem(
                        rec, "prompt_rule=file but the manifest has no prompt_wav", "prompt_error", fld="prompt_wav"
                    )
                ],
                0,
            )
        try:
            p_audio = load_audio(rec.prompt_wav, sr, 1, cfg.min_sample_rate)
        except AudioError as e:
            return [], [_problem(rec, f"prompt: {e}", e.kind, file=rec.prompt_wav, fld="prompt_wav")], 0
        file_prompt = prompt_from_wav(p_audio.wav, sr, cfg.prompt_seconds)

    samples, problems = [], []
    need = int(round(cfg.prompt_seconds * sr))
    np_dtype = np.float16 if cfg.latent_dtype == "float16" else np.float32
    for i in todo:
        s, e = bounds[i]
        seg_wav = wav[:, s * ratio : e * ratio]
        seg_name = f"segment {i} ({s / fps:.1f}-{e / fps:.1f} s)"
        if is_silent(seg_wav, cfg.silence_db):
            problems.append(_problem(rec, f"{seg_name} is silence-only", "silence", rec.audio_path))
            continue
        try:
            if file_prompt is not None:
                prompt, prompt_info = file_prompt, {"rule": "file", "source": rec.prompt_wav, "start_s": 0.0}
            else:
                p0, used = _prompt_window((s * ratio, e * ratio), wav.shape[-1], need)
                prompt = prompt_from_wav(wav[:, p0 : p0 + need], sr, cfg.prompt_seconds)
                prompt_info = {"rule": used, "source": rec.audio_path, "start_s": round(p0 / sr, 4)}
            mean, scale = enc.latent.encode_moments(seg_wav.unsqueeze(0))
            p_mean, p_scale = enc.latent.encode_moments(prompt)
            if song_tokens is not None:
                sketch = song_tokens[s:e]
            else:
                sketch = enc.sketch.tokenize(seg_wav.mean(0, keepdim=True), sr).reshape(-1).cpu().numpy()
        except Exception as ex:  # an encoder crash on one item is reported, the batch goes on
            problems.append(
                _problem(rec, f"{seg_name}: encoding failed: {type(ex).__name__}: {ex}", "encode_error", rec.audio_path)
            )
            continue
        mean, scale = mean[0].numpy(), scale[0].numpy()
        n = mean.shape[-1]
        if abs(len(sketch) - n) > cfg.length_tolerance:
            problems.append(
                _problem(
                    rec,
                    f"{seg_name}: latent has {n} frames but sketch has {len(sketch)}",
                    "length_mismatch",
                    rec.audio_path,
                )
            )
            continue
        n = min(n, len(sketch))
        mean, scale, sketch = mean[:, :n], scale[:, :n], np.asarray(sketch[:n], dtype=np.int64)
        start_s, end_s = s / fps, s / fps + n / fps
        if sections is not None:
            seg_sections = [
                TokenSection(t.tag, t.start - start_s, t.end - start_s, t.ids)
                for t in tok_sections
                if min(t.end, end_s) > max(t.start, start_s)
            ]
            ids = window_lyric_ids(seg_sections, 0.0, end_s - start_s, cfg.seconds_per_tag, sep_ids)
        else:
            seg_sections, ids = None, list(song_ids)
        arrays = {
            "latent_mean": mean.astype(np_dtype),
            "latent_scale": scale.astype(np_dtype),
            "sketch": sketch.astype(np.int32),
            "lyric_ids": np.asarray(ids, dtype=np.int32),
            "prompt_mean": p_mean[0].numpy().astype(np.float32),
            "prompt_scale": p_scale[0].numpy().astype(np.float32),
        }
        meta = {
            "idx": rec.idx,
            "song_id": rec.song_id,
            "key": keys[i],
            "segment": i,
            "num_segments": n_seg,
            "split": split,
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
            "lyrics_processed": processed_text,
            "lyrics_timed": sections is not None,
            "sections": None if seg_sections is None else [t.to_json() for t in seg_sections],
            "separator_ids": sep_ids,
            "dropped_lyric_items": sorted(set(dropped)),
            "lyrics_truncated": len(ids) > cfg.lyric_max_len,
            "prompt": {**prompt_info, "seconds": round(prompt.shape[-1] / sr, 4), "frames": int(p_mean.shape[-1])},
            "audio": {
                "path": rec.audio_path,
                "orig_sample_rate": audio.orig_sample_rate,
                "orig_channels": audio.orig_channels,
            },
            "extra": rec.extra,
        }
        try:
            validate_sample(arrays, meta, num_pitch, enc.lyrics.vocabulary.__len__())
        except SampleError as ex:
            problems.append(_problem(rec, f"{seg_name}: {ex}", ex.kind, rec.audio_path))
            continue
        blobs = {}
        if cfg.store_prompt_audio:
            blobs["prompt.flac"] = flac_bytes(prompt[0], sr)
        if cfg.store_audio:
            blobs["audio.flac"] = flac_bytes(seg_wav[:, : n * ratio], sr)
        info = {
            "key": keys[i],
            "idx": rec.idx,
            "song_id": rec.song_id,
            "segment": i,
            "num_segments": n_seg,
            "duration_s": meta["duration_s"],
            "frames": n,
            "licence": canonical_licence(rec.license),
        }
        samples.append((keys[i], encode_sample(keys[i], arrays, meta, blobs), info))
    return samples, problems, n_seg - len(todo)


def validate_sample(arrays: dict[str, np.ndarray], meta: dict[str, Any], num_pitch: int, vocab_size: int) -> None:
    """Write-time checks: what training would otherwise discover mid-run (or never)."""
    mean, scale, sketch = arrays["latent_mean"], arrays["latent_scale"], arrays["sketch"]
    if mean.ndim != 2 or mean.shape != scale.shape:
        raise SampleError(f"latent mean {mean.shape} and scale {scale.shape} must both be [D, frames]", "shape")
    if sketch.shape != (mean.shape[1],):
        raise SampleError(f"{mean.shape[1]} latent frames but {sketch.shape[0]} sketch tokens", "length_mismatch")
    if mean.shape[1] < meta["block_size"]:
        raise SampleError(f"{mean.shape[1]} frames is shorter than one block ({meta['block_size']})", "too_short")
    for name in ("latent_mean", "latent_scale", "prompt_mean", "prompt_scale"):
        if not np.isfinite(arrays[name]).all():
            raise SampleError(f"{name} has NaN/Inf values (damaged audio or an unstable encoder)", "nan_latent")
    if sketch.size and (sketch.min() < 0 or sketch.max() >= num_pitch):
        raise SampleError(
            f"sketch ids span [{sketch.min()}, {sketch.max()}] but must be in [0, {num_pitch})", "token_range"
        )
    ids = arrays["lyric_ids"]
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise SampleError(
            f"lyric ids span [{ids.min()}, {ids.max()}] outside the vocabulary of {vocab_size}", "token_range"
        )
    if ids.size == 0 and not meta["instrumental"]:
        raise SampleError("no lyric tokens for this segment and the song is not instrumental", "empty_lyrics")


# ----------------------------------------------------------------------------------------------- driver
def assign_split(rec: SongRecord, cfg: PreprocessConfig) -> str:
    """Split by song (all segments of one song on one side), stable across runs and task counts."""
    if rec.split:
        return rec.split
    u = stable_hash(f"{cfg.split_seed}:{rec.song_id}") / 2**64
    return "val" if u < cfg.val_fraction else "train"


def _done_keys(out_dir: Path) -> set[str]:
    return {item["key"] for side in completed_shards(out_dir) for item in side["items"]}


def _song_done(rec: SongRecord, done: set[str], counts: dict[str, int]) -> bool:
    n = counts.get(rec.idx)
    return n is not None and all(sample_key(rec.idx, i) in done for i in range(n))


def _run_partition(
    records: list[SongRecord],
    cfg: PreprocessConfig,
    encoders: Encoders | EncoderFactory,
    prefix: str,
    skip_keys: set[str],
    num_pitch: int,
    progress: bool,
    position: int = 0,
) -> PreprocessReport:
    enc = encoders() if callable(encoders) else encoders
    report = PreprocessReport()
    writers: dict[str, ResumableShardWriter] = {}
    try:
        from tqdm import tqdm

        bar = tqdm(records, desc=prefix, position=position, disable=not progress, unit="song", leave=False)
        for rec in bar:
            split = assign_split(rec, cfg)
            samples, problems, already = process_song(rec, enc, cfg, num_pitch, split, skip_keys)
            report.problems += problems
            report.skipped_existing += already
            for problem in problems:
                logger.warning("skipped: %s", problem)
            if samples:
                if split not in writers:
                    writers[split] = ResumableShardWriter(
                        cfg.out_dir, f"{split}-{prefix}", cfg.shard_maxcount, cfg.shard_maxsize
                    )
                for _, sample, info in samples:
                    writers[split].write(sample, info)
                report.written += len(samples)
            if samples or already:
                report.songs_done += 1
    finally:
        for w in writers.values():
            w.close()
            report.shards += w.written_shards
    return report


def _configure_log(out_dir: Path, task_index: int) -> logging.Handler:
    (out_dir / "reports").mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out_dir / "reports" / f"task-{task_index:04d}.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("songbloom.data").addHandler(handler)
    logging.getLogger("songbloom.data").setLevel(logging.INFO)
    return handler


class ProvenanceMismatch(RuntimeError):
    """The output folder holds shards made with other encoders or settings."""


def run_preprocess(
    manifests: Sequence[str | Path],
    cfg: PreprocessConfig,
    encoders: Encoders | EncoderFactory,
    task_index: int | None = 0,
    num_tasks: int | None = 1,
    workers: int = 1,
    progress: bool = False,
    overwrite: bool = False,
) -> PreprocessReport:
    """Preprocess this task's share of the manifests into ``cfg.out_dir`` (resumable; see module docstring).

    ``encoders`` is an :class:`Encoders` or, for ``workers > 1``, a picklable factory building one per process.
    """
    task_index, num_tasks = resolve_task(task_index, num_tasks)
    out_dir = Path(cfg.out_dir)
    if overwrite and out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    handler = _configure_log(out_dir, task_index)
    try:
        enc = encoders() if callable(encoders) else encoders
        num_pitch = effective_num_pitch(cfg, enc)
        prov = provenance(cfg, enc)
        prov_path = out_dir / PROVENANCE_NAME
        if prov_path.exists():
            old = json.loads(prov_path.read_text(encoding="utf-8"))
            if old.get("hash") != prov["hash"]:
                diff = sorted(k for k in prov if k != "hash" and old.get(k) != prov[k])
                raise ProvenanceMismatch(
                    f"{out_dir} holds shards made with different {diff}; they would be mixed with stale encodings. "
                    "Write to a new folder or pass --overwrite."
                )
        else:
            atomic_write_json(prov_path, prov)

        records: list[SongRecord] = []
        report = PreprocessReport()
        seen: dict[str, str] = {}
        for m in manifests:
            recs, probs = read_manifest(m)
            report.problems += probs
            for r in recs:
                if r.idx in seen:
                    report.problems.append(
                        _problem(r, f"duplicate idx {r.idx!r} (also in {seen[r.idx]})", "duplicate_idx", fld="idx")
                    )
                    continue
                seen[r.idx] = r.source
                records.append(r)
        mine = [r for r in records if stable_hash(r.idx) % num_tasks == task_index]
        done = _done_keys(out_dir)
        seg_counts = {item["idx"]: item["num_segments"] for side in completed_shards(out_dir) for item in side["items"]}
        todo = [r for r in mine if not _song_done(r, done, seg_counts)]
        report.skipped_existing += sum(seg_counts[r.idx] for r in mine if _song_done(r, done, seg_counts))
        report.songs_done += len(mine) - len(todo)
        logger.info(
            "task %d/%d: %d songs, %d already done, %d to encode",
            task_index,
            num_tasks,
            len(mine),
            len(mine) - len(todo),
            len(todo),
        )

        workers = max(1, min(workers, len(todo)))
        if workers == 1:
            parts = [_run_partition(todo, cfg, enc, f"t{task_index:04d}-w00", done, num_pitch, progress)]
        else:
            if not callable(encoders):
                raise ValueError("workers > 1 needs a picklable encoder factory, not built encoders")
            chunks = [[r for r in todo if stable_hash("w" + r.idx) % workers == w] for w in range(workers)]
            with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
                futs = [
                    pool.submit(
                        _run_partition,
                        chunk,
                        cfg,
                        encoders,
                        f"t{task_index:04d}-w{w:02d}",
                        done,
                        num_pitch,
                        progress,
                        w,
                    )
                    for w, chunk in enumerate(chunks)
                ]
                parts = [f.result() for f in futs]
        for p in parts:
            report.written += p.written
            report.skipped_existing += p.skipped_existing
            report.songs_done += p.songs_done
            report.problems += p.problems
            report.shards += p.shards
        atomic_write_json(out_dir / "reports" / f"task-{task_index:04d}.json", report.to_json())
        logger.info(
            "task %d: wrote %d samples in %d shards, %d already done, skipped %d items %s",
            task_index,
            report.written,
            len(report.shards),
            report.skipped_existing,
            len(report.problems),
            dict(Counter(p.kind for p in report.problems)),
        )
        write_index(out_dir)
        return report
    finally:
        logging.getLogger("songbloom.data").removeHandler(handler)
        handler.close()


def write_index(out_dir: str | Path) -> dict[str, Any]:
    """(Re)build ``index.json`` from the complete shards, the provenance and the task reports."""
    out_dir = Path(out_dir)
    prov_path = out_dir / PROVENANCE_NAME
    prov = json.loads(prov_path.read_text(encoding="utf-8")) if prov_path.exists() else None
    splits: dict[str, dict[str, Any]] = {}
    for side in completed_shards(out_dir):
        split = side["shard"].split("-", 1)[0]
        d = splits.setdefault(split, {"shards": [], "num_samples": 0, "duration_s": 0.0, "frames": 0, "songs": set()})
        d["shards"].append(
            {"name": side["shard"], "count": side["count"], "duration_s": side["duration_s"], "frames": side["frames"]}
        )
        d["num_samples"] += side["count"]
        d["duration_s"] += side["duration_s"]
        d["frames"] += side["frames"]
        d["songs"].update(i["song_id"] for i in side["items"])
    for d in splits.values():
        d["num_songs"] = len(d.pop("songs"))
        d["duration_s"] = round(d["duration_s"], 3)
    skipped: list[dict] = []
    for rp in sorted((out_dir / "reports").glob("task-*.json")):
        skipped += json.loads(rp.read_text(encoding="utf-8")).get("skipped", [])
    item_licences = [(i["idx"], i.get("licence")) for side in completed_shards(out_dir) for i in side["items"]]
    index = {
        "format": INDEX_FORMAT,
        "licences": merge_licences(data_licences(item_licences), (prov or {}).get("licences")),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "provenance": prov,
        "splits": splits,
        "skipped": {"count": len(skipped), "by_kind": dict(Counter(s["kind"] for s in skipped)), "items": skipped},
    }
    atomic_write_json(out_dir / INDEX_NAME, index)
    return index
