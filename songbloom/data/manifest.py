"""Song manifests: one JSON object per line, describing where a song's audio, lyrics and prompt live.

The schema is a superset of the public fork's JSONL (``idx``, ``audio_path``, ``lyrics``, ``prompt_wav``,
``sketch_tokens``, ``sketch_path``), so its files load unchanged. Our additions are ``song_id`` (segments of
one song never straddle the train/val split), ``language``, ``license`` (or ``licence``), ``instrumental``,
``split`` and ``sections``: per-section timestamps that let lyrics follow an audio crop instead of drifting out of step.
A vocal section may also carry ``lines`` (``[{start, end, text}]``, e.g. from LRC): then each line keeps its own
time and a crop takes exactly the lines inside it (see :mod:`songbloom.data.lyrics` for the rule).

Reading never raises on a bad line: every problem is returned with file, line and field, so a batch job can
skip it, report it, and still process every good line.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

VOCAL_TAGS = ("verse", "chorus", "bridge")
NON_VOCAL_TAGS = ("intro", "inst", "outro", "silence")
SECTION_TAGS = VOCAL_TAGS + NON_VOCAL_TAGS
LANGUAGES = ("zh", "en", "ja")
SPLITS = ("train", "val")

_KNOWN_FIELDS = {
    "idx",
    "audio_path",
    "lyrics",
    "prompt_wav",
    "sketch_tokens",
    "sketch_path",
    "language",
    "song_id",
    "sections",
    "license",
    "licence",
    "instrumental",
    "split",
}


@dataclass(frozen=True)
class Line:
    """One timed lyric line inside a vocal section (seconds relative to the song start)."""

    start: float
    end: float
    text: str

    @property
    def midpoint(self) -> float:
        return (self.start + self.end) / 2


@dataclass(frozen=True)
class Section:
    """One structural section with its time span in seconds (relative to the song start).

    ``lines``: the section's timed lines when known (LRC, manifests with ``lines``); ``text`` is then their texts
    joined with `` . `` and a window takes the lines inside it rather than the whole section.
    """

    tag: str
    start: float
    end: float
    text: str = ""
    lines: tuple[Line, ...] = ()

    @property
    def vocal(self) -> bool:
        return self.tag in VOCAL_TAGS

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class SongRecord:
    """One manifest line after validation. Paths are resolved against the manifest's folder."""

    idx: str
    audio_path: str
    lyrics: str | None = None
    prompt_wav: str | None = None
    sketch_tokens: list[int] | None = None
    sketch_path: str | None = None
    language: str | None = None
    song_id: str | None = None
    sections: list[Section] | None = None
    license: str | None = None
    instrumental: bool = False
    split: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # "file:line", for error messages

    def __post_init__(self) -> None:
        if self.song_id is None:
            self.song_id = self.idx

    def to_json_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("source")
        extra = d.pop("extra")
        if self.sections is not None:
            d["sections"] = [section_json(s) for s in self.sections]
        d = {k: v for k, v in d.items() if v is not None and not (k == "instrumental" and v is False)}
        d.update(extra)
        return d


@dataclass(frozen=True)
class Problem:
    """A bad input item: where it is and why it was skipped."""

    file: str
    reason: str
    line: int | None = None
    field: str | None = None
    idx: str | None = None
    kind: str = "bad_field"  # short machine-readable reason class, counted in reports

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line is not None else "")
        what = f" [{self.field}]" if self.field else ""
        item = f" (idx={self.idx})" if self.idx else ""
        return f"{where}{item}{what}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class ManifestError(ValueError):
    """A manifest line that cannot be used; carries the :class:`Problem`."""

    def __init__(self, problem: Problem):
        super().__init__(str(problem))
        self.problem = problem


def _resolve(path: str, base: Path) -> str:
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else (base / p))


def section_json(s: Section) -> dict[str, Any]:
    """A section as a manifest object (``lines`` only when the section has timed lines)."""
    d: dict[str, Any] = {"tag": s.tag, "start": round(s.start, 3), "end": round(s.end, 3), "text": s.text}
    if s.lines:
        d["lines"] = [{"start": round(ln.start, 3), "end": round(ln.end, 3), "text": ln.text} for ln in s.lines]
    return d


def lines_text(lines: tuple[Line, ...] | list[Line]) -> str:
    """The section text of timed lines: ``a . b .`` (the release's sentence separator)."""
    return " . ".join(ln.text for ln in lines) + " ."


def _parse_lines(raw: Any, span: tuple[float, float], where: tuple[str, int, str]) -> tuple[Line, ...]:
    """``lines`` of one vocal section: ordered, non-empty, inside the section's span (1 ms tolerance)."""
    file, line, fld = where
    if not isinstance(raw, list) or not raw:
        raise ManifestError(Problem(file, "'lines' must be a non-empty list of {start, end, text}", line, fld))
    out: list[Line] = []
    for j, item in enumerate(raw):
        here = f"{fld}.lines[{j}]"
        try:
            start, end, text = float(item["start"]), float(item["end"]), str(item["text"]).strip()
        except (KeyError, TypeError, ValueError):
            raise ManifestError(Problem(file, "needs numeric 'start', 'end' and a 'text'", line, here)) from None
        if not text or not (span[0] - 1e-3 <= start < end <= span[1] + 1e-3):
            raise ManifestError(
                Problem(file, f"needs text and {span[0]} <= start < end <= {span[1]} (its section)", line, here)
            )
        if out and start < out[-1].end - 1e-3:
            raise ManifestError(Problem(file, f"starts at {start}s before the previous line ends", line, here))
        out.append(Line(start, end, text))
    return tuple(out)


def _parse_sections(raw: Any, where: tuple[str, int]) -> list[Section]:
    file, line = where
    if not isinstance(raw, list):
        raise ManifestError(Problem(file, "must be a list of {tag, start, end, text}", line, "sections"))
    out: list[Section] = []
    for i, s in enumerate(raw):
        fld = f"sections[{i}]"
        if not isinstance(s, dict):
            raise ManifestError(Problem(file, "must be an object {tag, start, end, text}", line, fld))
        tag = str(s.get("tag", "")).strip().strip("[]").lower()
        if tag not in SECTION_TAGS:
            raise ManifestError(Problem(file, f"unknown tag {s.get('tag')!r}; use one of {SECTION_TAGS}", line, fld))
        try:
            start, end = float(s["start"]), float(s["end"])
        except (KeyError, TypeError, ValueError):
            raise ManifestError(Problem(file, "needs numeric 'start' and 'end' (seconds)", line, fld)) from None
        if not (0.0 <= start < end):
            raise ManifestError(Problem(file, f"needs 0 <= start < end, got start={start} end={end}", line, fld))
        if out and start < out[-1].end - 1e-3:
            raise ManifestError(
                Problem(file, f"starts at {start}s before the previous section ends ({out[-1].end}s)", line, fld)
            )
        text = s.get("text") or ""
        if not isinstance(text, str):
            raise ManifestError(Problem(file, "'text' must be a string", line, fld))
        lines: tuple[Line, ...] = ()
        if s.get("lines") is not None and tag in VOCAL_TAGS:
            lines = _parse_lines(s["lines"], (start, end), (file, line, fld))
            text = lines_text(lines)
        text = text.strip()
        if tag in VOCAL_TAGS and not text:
            raise ManifestError(Problem(file, f"vocal section [{tag}] has no text", line, fld))
        if tag in NON_VOCAL_TAGS and text:
            raise ManifestError(Problem(file, f"non-vocal section [{tag}] must not carry text", line, fld))
        out.append(Section(tag, start, end, text, lines))
    return out


def _record_idx(obj: dict, file: str, line: int, fallback_idx: str) -> str:
    idx = obj.get("idx", fallback_idx)
    if not isinstance(idx, (str, int)) or str(idx).strip() == "":
        raise ManifestError(Problem(file, "must be a non-empty string or integer", line, "idx"))
    return str(idx).strip()


def _check_field_types(obj: dict, file: str, line: int, idx: str) -> None:
    """The per-field checks of one record, each raising :class:`ManifestError` naming its field."""
    audio = obj.get("audio_path")
    if not isinstance(audio, str) or not audio.strip():
        raise ManifestError(
            Problem(file, "missing or not a string: every song needs its audio file", line, "audio_path", idx)
        )
    lyrics = obj.get("lyrics")
    if lyrics is not None and not isinstance(lyrics, str):
        raise ManifestError(Problem(file, "must be a string in the release lyric format", line, "lyrics", idx))
    tokens = obj.get("sketch_tokens")
    if tokens is not None:
        if not isinstance(tokens, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in tokens):
            raise ManifestError(Problem(file, "must be a list of integers", line, "sketch_tokens", idx))
    language = obj.get("language")
    if language is not None and language not in LANGUAGES:
        raise ManifestError(
            Problem(file, f"unknown language {language!r}; use one of {LANGUAGES}", line, "language", idx)
        )
    split = obj.get("split")
    if split is not None and split not in SPLITS:
        raise ManifestError(Problem(file, f"unknown split {split!r}; use one of {SPLITS}", line, "split", idx))
    for key in ("prompt_wav", "sketch_path", "song_id", "license", "licence"):
        if obj.get(key) is not None and not isinstance(obj[key], str):
            raise ManifestError(Problem(file, "must be a string", line, key, idx))
    # "licence" (British spelling, songbloom.licences) and "license" name the same field.
    if obj.get("licence") is not None and obj.get("license") is not None and obj["licence"] != obj["license"]:
        raise ManifestError(Problem(file, "licence and license disagree; keep one", line, "licence", idx))


def parse_record(obj: Any, file: str, line: int, base: Path, fallback_idx: str) -> SongRecord:
    """Validate one decoded JSON line into a :class:`SongRecord` (raises :class:`ManifestError`)."""
    if not isinstance(obj, dict):
        raise ManifestError(Problem(file, f"expected a JSON object, got {type(obj).__name__}", line))
    idx = _record_idx(obj, file, line, fallback_idx)
    _check_field_types(obj, file, line, idx)
    audio, lyrics, tokens = obj["audio_path"], obj.get("lyrics"), obj.get("sketch_tokens")
    language, split = obj.get("language"), obj.get("split")
    sections = None
    if obj.get("sections") is not None:
        try:
            sections = _parse_sections(obj["sections"], (file, line))
        except ManifestError as e:
            raise ManifestError(Problem(file, e.problem.reason, line, e.problem.field, idx, "bad_sections")) from None
    return SongRecord(
        idx=idx,
        audio_path=_resolve(audio, base),
        lyrics=lyrics,
        prompt_wav=_resolve(obj["prompt_wav"], base) if obj.get("prompt_wav") else None,
        sketch_tokens=tokens,
        sketch_path=_resolve(obj["sketch_path"], base) if obj.get("sketch_path") else None,
        language=language,
        song_id=obj.get("song_id"),
        sections=sections,
        license=obj.get("license") if obj.get("license") is not None else obj.get("licence"),
        instrumental=bool(obj.get("instrumental", False)),
        split=split,
        extra={k: v for k, v in obj.items() if k not in _KNOWN_FIELDS},
        source=f"{file}:{line}",
    )


def read_manifest(path: str | Path) -> tuple[list[SongRecord], list[Problem]]:
    """Read a JSONL manifest; return the good records and one :class:`Problem` per bad line.

    Relative paths are resolved against the manifest's folder (the fork's convention). A repeated ``idx``
    keeps the first line and reports the later ones, because the id names shard samples.
    """
    path = Path(path)
    base = path.parent
    records: list[SongRecord] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    try:
        raw_lines = path.read_bytes().splitlines()
    except OSError as e:
        return [], [Problem(str(path), f"cannot read manifest: {e.strerror or e}", kind="missing_file")]
    for n, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            problems.append(
                Problem(str(path), f"not UTF-8 ({e.reason} at byte {e.start}); re-encode the file", n, kind="not_utf8")
            )
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            problems.append(
                Problem(str(path), f"malformed JSON: {e.msg} at column {e.colno}", n, kind="malformed_json")
            )
            continue
        try:
            rec = parse_record(obj, str(path), n, base, fallback_idx=f"{path.stem}-{n}")
        except ManifestError as e:
            problems.append(e.problem)
            continue
        if rec.idx in seen:
            problems.append(
                Problem(
                    str(path),
                    f"duplicate idx {rec.idx!r} (first on line {seen[rec.idx]}); kept the first",
                    n,
                    "idx",
                    rec.idx,
                    "duplicate_idx",
                )
            )
            continue
        seen[rec.idx] = n
        records.append(rec)
    return records, problems


def write_manifest(records: list[SongRecord] | list[dict[str, Any]], path: str | Path) -> Path:
    """Write records as UTF-8 JSONL (paths are written as given)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            d = r.to_json_dict() if isinstance(r, SongRecord) else r
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    return path
