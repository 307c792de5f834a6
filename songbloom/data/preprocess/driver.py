"""One preprocessing task: pick its songs, skip what is already in complete shards, encode the rest in workers,
write the shards, the task report of skipped items and the index."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from songbloom.data.encoders import Encoders
from songbloom.data.manifest import SongRecord, read_manifest
from songbloom.data.preprocess.config import PreprocessConfig
from songbloom.data.preprocess.index import write_index
from songbloom.data.preprocess.lock import STALE_AFTER_S, OutputLocked, TaskLock, acquire_task_lock, live_locks
from songbloom.data.preprocess.provenance import claim_out_dir, effective_num_pitch, provenance
from songbloom.data.preprocess.report import PreprocessReport, SampleError, song_problem
from songbloom.data.preprocess.song import process_song
from songbloom.data.preprocess.tasks import assign_split, auto_split, resolve_task, task_records, worker_records
from songbloom.data.shards import (
    ResumableShardWriter,
    atomic_write_json,
    completed_shards,
    remove_incomplete,
    sample_key,
)
from songbloom.utils.processes import exit_with_owner

logger = logging.getLogger("songbloom.data.preprocess")  # the name the task log and its readers know

EncoderFactory = Callable[[], Encoders]
WORKER_WATCH_S = 0.5  # how often a worker checks that this process still lives


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
        for rec in bar:  # the per-song loop: every bad song or segment is reported here, once
            split = assign_split(rec, cfg)
            try:
                samples, problems, already = process_song(rec, enc, cfg, num_pitch, split, skip_keys)
            except SampleError as err:
                samples, problems, already = [], [err.problem(rec)], 0
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
                    report.add_segment(info)
                    report.prompt_sources[info["prompt"]] += 1
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


def _read_records(manifests: Sequence[str | Path], report: PreprocessReport) -> list[SongRecord]:
    """Every manifest's songs; bad lines and duplicate ids go into ``report``."""
    records: list[SongRecord] = []
    seen: dict[str, str] = {}
    for m in manifests:
        recs, probs = read_manifest(m)
        report.problems += probs
        for r in recs:
            if r.idx in seen:
                report.problems.append(
                    song_problem(r, f"duplicate idx {r.idx!r} (also in {seen[r.idx]})", "duplicate_idx", fld="idx")
                )
                continue
            seen[r.idx] = r.source
            records.append(r)
    return records


def _encode_in_workers(
    todo: list[SongRecord],
    cfg: PreprocessConfig,
    encoders: Encoders | EncoderFactory,
    enc: Encoders,
    task_lock: TaskLock,
    workers: int,
    done: set[str],
    num_pitch: int,
    progress: bool,
) -> list[PreprocessReport]:
    task_index = int(task_lock.info["task_index"])
    workers = max(1, min(workers, len(todo)))
    if workers == 1:
        return [_run_partition(todo, cfg, enc, f"t{task_index:04d}-w00", done, num_pitch, progress)]
    if not callable(encoders):
        raise ValueError("workers > 1 needs a picklable encoder factory, not built encoders")
    chunks = worker_records(todo, workers)
    # Each worker exits within a second of this process's death (a SIGKILL leaves no one to stop it otherwise).
    owner = (os.getpid(), WORKER_WATCH_S)
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=exit_with_owner, initargs=owner) as pool:
        futs = [
            pool.submit(
                _run_partition, chunk, cfg, encoders, f"t{task_index:04d}-w{w:02d}", done, num_pitch, progress, w
            )
            for w, chunk in enumerate(chunks)
        ]
        task_lock.set_workers([p.pid for p in mp.active_children() if p.pid is not None])
        return [f.result() for f in futs]


def _open_out_dir(out_dir: Path, task_index: int, overwrite: bool, lock_stale_s: float) -> TaskLock:
    """Lock this task's part of ``out_dir`` (after ``--overwrite`` emptied it) and delete its leftovers."""
    if overwrite and out_dir.exists():
        others = live_locks(out_dir, lock_stale_s)
        if others:
            raise OutputLocked(f"{out_dir}: not deleted for --overwrite, other tasks are writing it: {others}")
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    task_lock = acquire_task_lock(out_dir, task_index, stale_after_s=lock_stale_s)
    # Leftovers of any earlier run of this task (partial shards, tars without a sidecar), whatever its worker count.
    remove_incomplete(out_dir, f"*-t{task_index:04d}")
    return task_lock


def _todo(out_dir: Path, mine: list[SongRecord], report: PreprocessReport) -> tuple[list[SongRecord], set[str]]:
    """The songs still to encode and the sample keys already in complete shards (counted into ``report``)."""
    done = _done_keys(out_dir)
    seg_counts = {item["idx"]: item["num_segments"] for side in completed_shards(out_dir) for item in side["items"]}
    todo = [r for r in mine if not _song_done(r, done, seg_counts)]
    report.skipped_existing += sum(seg_counts[r.idx] for r in mine if _song_done(r, done, seg_counts))
    report.songs_done += len(mine) - len(todo)
    return todo, done


def _warn_inside_prompts(report: PreprocessReport) -> None:
    n = report.prompt_sources.get("inside_fallback", 0)
    if n:
        logger.warning(
            "%d of %d samples take their style prompt from inside their own target (the song is too short for a "
            "clip outside the segment): the model can copy the prompt. Give prompt_wav in the manifest or use "
            "longer songs (prompt sources: %s)",
            n,
            sum(report.prompt_sources.values()),
            dict(report.prompt_sources),
        )


def run_preprocess(
    manifests: Sequence[str | Path],
    cfg: PreprocessConfig,
    encoders: Encoders | EncoderFactory,
    task_index: int | None = 0,
    num_tasks: int | None = 1,
    workers: int = 1,
    progress: bool = False,
    overwrite: bool = False,
    lock_stale_s: float = STALE_AFTER_S,
) -> PreprocessReport:
    """Preprocess this task's share of the manifests into ``cfg.out_dir`` (resumable; see the package docstring).

    ``encoders`` is an :class:`Encoders` or, for ``workers > 1``, a picklable factory building one per process.
    The task holds ``locks/task-TTTT.lock`` while it runs (:mod:`~songbloom.data.preprocess.lock`); a live
    holder makes this raise :class:`~songbloom.data.preprocess.lock.OutputLocked`.
    """
    task_index, num_tasks = resolve_task(task_index, num_tasks)
    out_dir = Path(cfg.out_dir)
    task_lock = _open_out_dir(out_dir, task_index, overwrite, lock_stale_s)
    handler = _configure_log(out_dir, task_index)
    try:
        enc = encoders() if callable(encoders) else encoders
        num_pitch = effective_num_pitch(cfg, enc)
        claim_out_dir(out_dir, provenance(cfg, enc))

        report = PreprocessReport()
        records, report.validation = auto_split(_read_records(manifests, report), cfg)
        mine = task_records(records, task_index, num_tasks)
        todo, done = _todo(out_dir, mine, report)
        logger.info(
            "task %d/%d: %d songs, %d already done, %d to encode",
            task_index,
            num_tasks,
            len(mine),
            len(mine) - len(todo),
            len(todo),
        )
        for part in _encode_in_workers(todo, cfg, encoders, enc, task_lock, workers, done, num_pitch, progress):
            report.add(part)
        atomic_write_json(out_dir / "reports" / f"task-{task_index:04d}.json", report.to_json())
        logger.info(
            "task %d: landed %d samples (%d new in %d shards, %d already done), skipped %d items %s",
            task_index,
            report.landed,
            report.written,
            len(report.shards),
            report.skipped_existing,
            len(report.problems),
            dict(Counter(p.kind for p in report.problems)),
        )
        write_index(out_dir)
        _warn_inside_prompts(report)
        return report
    finally:
        logging.getLogger("songbloom.data").removeHandler(handler)
        handler.close()
        task_lock.release()
