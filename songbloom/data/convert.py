"""Converters from common corpus layouts to our JSONL manifest.

* a folder of audio files with ``<stem>.lrc`` (timed lines), or ``<stem>.txt`` (release-format or plain lyrics);
* jaCappella (``<subset>/<song>/{lead_vocal,mixture,mixture_stereo}.wav`` + ``*_SVS.musicxml``/``*.musicxml``),
  with download, scat filtering and score-timed sections in :mod:`songbloom.data.jacappella`;
* Kiritan (``wav/<name>.wav`` at 96 kHz + ``musicxml/<name>.(music)xml``).

Timed LRC lines become sections (gaps become ``[intro]``/``[inst]``/``[outro]``), so lyrics can follow crops.
Kiritan scores give one untimed vocal section per song; jaCappella sections are timed from the score.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import soundfile as sf

from songbloom.data.lyrics import check_release_lyrics
from songbloom.data.manifest import SECTION_TAGS, Problem, Section, write_manifest

logger = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
_LRC_TIME = re.compile(r"\[(\d+):(\d+(?:\.\d+)?)\]")
_LRC_META = re.compile(r"^\[[a-z]+:.*\]$", re.I)



def finish_manifest(rows: list[dict], problems: list[Problem], out: str | Path) -> tuple[Path, list[Problem]]:
    """Log every skipped item with its reason, then write the manifest of the good ones."""
    for p in problems:
        logger.warning("skipped: %s", p)
    return write_manifest(rows, out), problems

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

    A line that is only a tag (``[chorus]``) names the following lines' section; untagged lines are ``verse``.
    An empty timed line ends the previous line (common LRC practice).
    """
    sections: list[Section] = []
    tag, lines, start, last_end = "verse", [], None, 0.0
    items = [(t, b) for t, b in entries if t < duration]

    def close(end: float) -> None:
        nonlocal lines, start
        if lines:
            sections.append(Section(tag, start, end, " . ".join(lines) + " ."))
        lines, start = [], None

    for i, (t, body) in enumerate(items):
        nxt = items[i + 1][0] if i + 1 < len(items) else duration
        m = re.fullmatch(r"\[([a-z]+)\]", body.strip().lower())
        if m and m.group(1) in SECTION_TAGS:
            close(t)
            tag = m.group(1)
            continue
        if not body:
            close(t)
            last_end = t
            continue
        if start is not None and t - last_end >= gap_seconds:
            close(last_end)
        if start is None:
            gap_start = sections[-1].end if sections else 0.0
            if t - gap_start >= gap_seconds or (not sections and t > 0):
                sections.append(Section("intro" if not sections else "inst", gap_start, t))
            start = t
        lines.append(body.replace(".", " ").strip())
        last_end = min(nxt, t + 10.0)
    close(last_end)
    if sections and duration - sections[-1].end > 0.5:
        sections.append(Section("outro", sections[-1].end, duration))
    return sections


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
            if lrc.exists():
                duration = sf.info(str(audio)).duration
                sections = lrc_to_sections(parse_lrc(lrc.read_text(encoding="utf-8")), duration, gap_seconds)
                if not any(s.vocal for s in sections):
                    raise ValueError("no timed lyric lines")
                row["sections"] = [
                    {"tag": s.tag, "start": round(s.start, 3), "end": round(s.end, 3), "text": s.text} for s in sections
                ]
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
