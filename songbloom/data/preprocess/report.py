"""Skipped items: one :class:`SampleError` per bad song or segment, turned into a reported :class:`Problem`."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from songbloom.data.manifest import Problem, SongRecord

logger = logging.getLogger(__name__)


class SampleError(ValueError):
    """A song or segment that cannot become a training sample; raised where it is found, caught once per item.

    ``kind`` classifies the reason for the report; ``file`` is the file at fault (default: the manifest line, else
    the song's audio) and ``field`` the manifest field at fault.
    """

    def __init__(self, message: str, kind: str, *, file: str | None = None, field: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.file = file
        self.field = field

    def problem(self, rec: SongRecord) -> Problem:
        """The report entry of this error for song ``rec``."""
        return song_problem(rec, str(self), self.kind, file=self.file, fld=self.field)


def song_problem(rec: SongRecord, reason: str, kind: str, file: str | None = None, fld: str | None = None) -> Problem:
    """A problem with song ``rec``: in ``file`` when given, else at its manifest line (else its audio file)."""
    src_file, _, line = rec.source.rpartition(":")
    return Problem(
        file=file or src_file or rec.audio_path,
        reason=reason,
        line=int(line) if line.isdigit() and file is None else None,
        field=fld,
        idx=rec.idx,
        kind=kind,
    )


@dataclass
class PreprocessReport:
    written: int = 0
    skipped_existing: int = 0
    songs_done: int = 0
    problems: list[Problem] = field(default_factory=list)
    shards: list[str] = field(default_factory=list)
    # per written segment: key, lyric tokens, timed lines and seconds of vocals inside it (None: untimed lyrics)
    segments: list[dict[str, Any]] = field(default_factory=list)

    def add_segment(self, info: dict[str, Any]) -> None:
        """Record a written segment's lyric account (from its shard-index entry) and log it."""
        entry = {k: info.get(k) for k in ("key", "lyric_tokens", "lyric_lines", "vocal_seconds")}
        self.segments.append(entry)
        if entry["lyric_lines"] is not None:
            logger.info(
                "%s: %d lyric lines, %.1f s of vocals, %d lyric tokens",
                entry["key"], entry["lyric_lines"], entry["vocal_seconds"], entry["lyric_tokens"],
            )

    @property
    def landed(self) -> int:
        """Samples of this task now in complete shards: written by this run or found there already."""
        return self.written + self.skipped_existing
    # Where each written sample's style prompt came from: file (the manifest's prompt_wav), outside (the same
    # song outside the segment) or inside_fallback (the song is too short: the prompt overlaps the target).
    prompt_sources: Counter = field(default_factory=Counter)
    validation: str = ""  # how the validation songs were chosen (tasks.auto_split)

    def add(self, other: PreprocessReport) -> None:
        """Fold in another worker's report."""
        self.segments += other.segments
        self.written += other.written
        self.skipped_existing += other.skipped_existing
        self.songs_done += other.songs_done
        self.problems += other.problems
        self.shards += other.shards
        self.prompt_sources.update(other.prompt_sources)

    def to_json(self) -> dict[str, Any]:
        return {
            "landed_samples": self.landed,
            "written_samples": self.written,
            "already_done_samples": self.skipped_existing,
            "songs_done": self.songs_done,
            "skipped_count": len(self.problems),
            "skipped_by_kind": dict(Counter(p.kind for p in self.problems)),
            "skipped": [p.to_json() for p in self.problems],
            "new_shards": self.shards,
            "segments": self.segments,
            "prompt_sources": dict(self.prompt_sources),
            "validation": self.validation,
        }
