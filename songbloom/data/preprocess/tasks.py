"""Who encodes what: the SLURM array task, the train/val split of a song, the worker of a song (stable hashes)."""

from __future__ import annotations

import dataclasses
import hashlib
import logging

from songbloom.data.manifest import SongRecord
from songbloom.data.preprocess.config import PreprocessConfig
from songbloom.utils.slurm import array_task

logger = logging.getLogger("songbloom.data.preprocess")

AUTO_MIN_SONGS = 3  # --val-fraction not given: one validation song from this many songs on


def stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def resolve_task(task_index: int | None, num_tasks: int | None) -> tuple[int, int]:
    """Task from arguments, else from SLURM array variables (ids are made 0-based), else (0, 1)."""
    return array_task(task_index, num_tasks)


def assign_split(rec: SongRecord, cfg: PreprocessConfig) -> str:
    """Split by song (all segments of one song on one side), stable across runs and task counts."""
    if rec.split:
        return rec.split
    u = stable_hash(f"{cfg.split_seed}:{rec.song_id}") / 2**64
    return "val" if u < (cfg.val_fraction or 0.0) else "train"


def auto_split(records: list[SongRecord], cfg: PreprocessConfig) -> tuple[list[SongRecord], str]:
    """``val_fraction=None`` (``--val-fraction`` not given): one song held out for validation when there are
    three or more, none (with a warning) when there are two or fewer. Decided over every manifest's songs, so
    all array tasks agree; the held-out song is the one with the smallest stable hash of its ``song_id``.

    Returns the records (the chosen song's with ``split='val'``) and a note for the summary.
    """
    if cfg.val_fraction is not None:
        rule = "none (--val-fraction 0)" if cfg.val_fraction == 0 else f"--val-fraction {cfg.val_fraction:g}"
        return records, rule
    if any(r.split == "val" for r in records):
        return records, "the manifests' split fields"
    songs = sorted({str(r.song_id) for r in records if not r.split})
    if len(songs) < AUTO_MIN_SONGS:
        note = (
            f"no validation song: only {len(songs)} song(s) without a split field (one is held out from "
            f"{AUTO_MIN_SONGS} on); training selects checkpoints by step. Give --val-fraction 0 to say so explicitly"
        )
        logger.warning("%s", note)
        return records, note
    held = min(songs, key=lambda song: stable_hash(f"{cfg.split_seed}:{song}"))
    logger.info("validation: song %r held out of %d (--val-fraction not given)", held, len(songs))
    out = [dataclasses.replace(r, split="val") if not r.split and r.song_id == held else r for r in records]
    return out, f"1 of {len(songs)} songs held out ({held!r}; --val-fraction not given)"


def task_records(records: list[SongRecord], task_index: int, num_tasks: int) -> list[SongRecord]:
    """The songs of this array task."""
    return [r for r in records if stable_hash(r.idx) % num_tasks == task_index]


def worker_records(records: list[SongRecord], workers: int) -> list[list[SongRecord]]:
    """The songs of each worker process."""
    return [[r for r in records if stable_hash("w" + r.idx) % workers == w] for w in range(workers)]
