"""Converters from common corpus layouts to our JSONL manifest.

* a folder of audio files with ``<stem>.lrc`` (timed lines), or ``<stem>.txt`` (release-format or plain lyrics);
* jaCappella (``<subset>/<song>/{lead_vocal,mixture,mixture_stereo}.wav`` + ``*_SVS.musicxml``/``*.musicxml``),
  with download, scat filtering and score-timed sections in :mod:`songbloom.data.jacappella`;
* Kiritan (``wav/<name>.wav`` at 96 kHz + ``musicxml/<name>.(music)xml``).

Timed LRC lines are grouped into sections (gaps become ``[intro]``/``[inst]``/``[outro]``) and keep their own
times (``lines``), so lyrics follow crops line by line. Such a line also gets the whole song as one release-format
``lyrics`` string (:func:`timed_lyrics_fields`) for readers of whole songs (``recover --heldout``, request lines).
Kiritan scores give one untimed vocal section per song; jaCappella sections are timed from the score.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import soundfile as sf

from songbloom.data.lyrics import check_release_lyrics, sections_to_lyrics
from songbloom.data.manifest import SECTION_TAGS, Line, Problem, Section, lines_text, section_json, write_manifest
from songbloom.text.lyrics import SECONDS_PER_TAG_150S
from songbloom.text.window import line_end

logger = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
_LRC_TIME = re.compile(r"\[(\d+):(\d+(?:\.\d+)?)\]")
_LRC_META = re.compile(r"^\[[a-z]+:.*\]$", re.I)



def finish_manifest(rows: list[dict], problems: list[Problem], out: str | Path) -> tuple[Path, list[Problem]]:
    """Log every skipped item with its reason, then write the manifest of the good ones."""
    for p in problems:
        logger.warning("skipped: %s", p)
    return write_manifest(rows, out), problems


def timed_lyrics_fields(sections: list[Section]) -> dict:
    """The manifest fields of timed lyrics: ``sections`` (what preprocessing reads) and the whole song as one
    release-format ``lyrics`` string, non-vocal tags counted at the 150 s models' 1 s per tag.

    Why both: readers of whole songs (``recover --heldout``, an ``infer.py`` request line built from the manifest)
    need a lyric string, and preprocessing ignores ``lyrics`` when ``sections`` are given."""
    lyrics = sections_to_lyrics(sections, SECONDS_PER_TAG_150S)
    return {"lyrics": lyrics, "sections": [section_json(s) for s in sections]}


def parse_lrc(text: str) -> list[tuple[float, str]]:
    """``[mm:ss.xx] line`` entries (a line may carry several times), sorted; metadata tags are ignored."""
    out = []
    for raw in text.splitlines():
        raw = raw.strip()
        times = _LRC_TIME.findall(raw)
        if not times:
            continue
        body = _LRC_TIME.sub("", raw).strip()
        for m, s in times:
            out.append((int(m) * 60 + float(s), body))
    return sorted(out, key=lambda e: e[0])  # stable: a tag line keeps its place before same-time lines




def lrc_to_sections(entries: list[tuple[float, str]], duration: float, gap_seconds: float = 4.0) -> list[Section]:
    """Group timed lines into vocal sections; silences of ``gap_seconds`` or more become non-vocal sections.

    Every line keeps its own time (``Section.lines``): it starts at its timestamp and ends at the next timestamp
    (at most ``LINE_MAX_SECONDS`` of :mod:`songbloom.text.window` later, and at the song's end), so crops and
    segments take exactly the lines inside them. A line that is only a tag (``[chorus]``) names the following
    lines' section; untagged lines are ``verse``. An empty timed line ends the previous line (common LRC practice).
    """
    sections: list[Section] = []
    tag, lines = "verse", []
    items = [(t, b) for t, b in entries if t < duration]

    def close() -> None:
        nonlocal lines
        if lines:
            sections.append(Section(tag, lines[0].start, lines[-1].end, lines_text(lines), tuple(lines)))
        lines = []

    for i, (t, body) in enumerate(items):
        nxt = items[i + 1][0] if i + 1 < len(items) else duration
        m = re.fullmatch(r"\[([a-z]+)\]", body.strip().lower())
        if m and m.group(1) in SECTION_TAGS:
            close()
            tag = m.group(1)
            continue
        if not body:
            close()
            continue
        if lines and t - lines[-1].end >= gap_seconds:
            close()
        if not lines:
            _gap_section(sections, t, gap_seconds)
        _add_line(lines, t, line_end(t, nxt, duration), body.replace(".", " ").strip())
    close()
    if sections and duration - sections[-1].end > 0.5:
        sections.append(Section("outro", sections[-1].end, duration))
    return sections


def _add_line(lines: list[Line], start: float, end: float, text: str) -> None:
    """Append a timed line; lines sharing one timestamp become one line (their texts joined by `` . ``)."""
    if lines and start - lines[-1].start < 1e-3:
        prev = lines.pop()
        lines.append(Line(prev.start, max(prev.end, end), f"{prev.text} . {text}"))
    else:
        lines.append(Line(start, end, text))


def _gap_section(sections: list[Section], t: float, gap_seconds: float) -> None:
    """Before a vocal section starting at ``t``: ``[intro]`` (from 0) or ``[inst]`` for a long enough gap."""
    gap_start = sections[-1].end if sections else 0.0
    if t - gap_start >= gap_seconds or (not sections and t > 0):
        sections.append(Section("intro" if not sections else "inst", gap_start, t))


def _plain_text_lyrics(text: str) -> str:
    text = text.strip()
    if check_release_lyrics(text) is None:
        return text
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return "[verse] " + ". ".join(lines) + "." if lines else ""


def convert_folder(
    folder: str | Path,
    out: str | Path,
    language: str | None = None,
    license: str | None = None,
    gap_seconds: float = 4.0,
) -> tuple[Path, list[Problem]]:
    """Audio files with lyrics beside them -> manifest. Files without lyrics are reported, not guessed."""
    folder = Path(folder)
    rows, problems = [], []
    for audio in sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES):
        idx = str(audio.relative_to(folder).with_suffix("")).replace("/", "__")
        row = {"idx": idx, "audio_path": str(audio.resolve()), "song_id": idx}
        lrc, txt = audio.with_suffix(".lrc"), audio.with_suffix(".txt")
        try:
            duration = sf.info(str(audio)).duration
        except (RuntimeError, OSError) as e:  # soundfile raises LibsndfileError (a RuntimeError)
            problems.append(Problem(str(audio), f"unreadable audio ({e}); convert it to WAV or FLAC, or remove it",
                                    kind="unreadable_audio"))
            continue
        try:
            if lrc.exists():
                sections = lrc_to_sections(parse_lrc(lrc.read_text(encoding="utf-8")), duration, gap_seconds)
                if not any(s.vocal for s in sections):
                    raise ValueError("no timed lyric lines")
                row.update(timed_lyrics_fields(sections))
            elif txt.exists():
                row["lyrics"] = _plain_text_lyrics(txt.read_text(encoding="utf-8"))
            else:
                problems.append(Problem(str(audio), f"no .lrc or .txt lyrics beside it; add {audio.stem}.lrc or "
                                        f"{audio.stem}.txt", kind="no_lyrics"))
                continue
        except UnicodeDecodeError as e:
            problems.append(Problem(str(lrc if lrc.exists() else txt), f"not UTF-8 text (byte {e.start + 1}); "
                                    "save it as UTF-8", kind="invalid_lyrics"))
            continue
        except (ValueError, RuntimeError) as e:
            problems.append(Problem(str(lrc if lrc.exists() else txt), f"unusable lyrics: {e}", kind="invalid_lyrics"))
            continue
        if language:
            row["language"] = language
        row["license"] = license or "unknown"  # songbloom.licences: unknown terms are not cleared commercially
        rows.append(row)
    return finish_manifest(rows, problems, out)


# ------------------------------------------------------------------------------------------------ MusicXML
def musicxml_lyrics(path: str | Path) -> list[str]:
    """Phrases of a MusicXML score's lyric syllables; rests and breath marks split phrases."""
    root = ET.parse(path).getroot()
    phrases, cur = [], []
    for note in root.iter("note"):
        if note.find("rest") is not None:
            if cur:
                phrases.append("".join(cur))
                cur = []
            continue
        lyric = note.find("lyric")
        if lyric is None:
            continue
        text = "".join(t.text or "" for t in lyric.findall("text")).strip()
        if text:
            cur.append(text)
    if cur:
        phrases.append("".join(cur))
    return [p.replace("。", "").replace("、", "") for p in phrases if p.strip()]


def _score_row(idx: str, audio: Path, score: Path, language: str, license: str | None) -> dict:
    phrases = musicxml_lyrics(score)
    if not phrases:
        raise ValueError(f"{score}: no lyric syllables in the score")
    row = {
        "idx": idx,
        "song_id": idx,
        "audio_path": str(audio.resolve()),
        "lyrics": "[verse] " + ". ".join(phrases) + ".",
        "language": language,
    }
    if license:
        row["license"] = license
    return row


def convert_jacappella(
    root: str | Path,
    out: str | Path,
    audio_type: str = "lead_vocal",
    score_type: str = "svs",
    *,
    min_lyric_fraction: float = 0.3,
    gap_seconds: float = 4.0,
    score_offset: float = 0.0,
    timestamps: bool = True,
) -> tuple[Path, list[Problem]]:
    """jaCappella: one song per folder with ``<audio_type>.wav`` and its MusicXML score.

    Scat-only songs are skipped by the rule in :mod:`songbloom.data.jacappella`; lyric phrases get section
    timestamps from the score's note timing. ``<out>.report.json`` lists every song's counts and decision.
    """
    from songbloom.data.jacappella import jacappella_rows, write_report

    rows, report = jacappella_rows(
        root,
        audio_type,
        score_type,
        min_lyric_fraction=min_lyric_fraction,
        gap_seconds=gap_seconds,
        score_offset=score_offset,
        timestamps=timestamps,
    )
    path, problems = finish_manifest(rows, report.problems, out)
    write_report(report, path)
    return path, problems


def convert_kiritan(root: str | Path, out: str | Path) -> tuple[Path, list[Problem]]:
    """Kiritan: ``wav/<name>.wav`` matched by name to ``musicxml/<name>.xml`` or ``.musicxml``."""
    root = Path(root)
    rows, problems = [], []
    for wav in sorted((root / "wav").glob("*.wav")):
        score = next(
            (
                p
                for p in (root / "musicxml" / f"{wav.stem}.xml", root / "musicxml" / f"{wav.stem}.musicxml")
                if p.exists()
            ),
            None,
        )
        if score is None:
            problems.append(Problem(str(wav), "no musicxml/<same name>.xml score", kind="missing_file"))
            continue
        try:
            rows.append(_score_row(f"kiritan__{wav.stem}", wav, score, "ja", "Tohoku-Kiritan-singing-DB-terms"))
        except (ET.ParseError, ValueError) as e:
            problems.append(Problem(str(score), str(e), kind="invalid_lyrics"))
    return finish_manifest(rows, problems, out)
