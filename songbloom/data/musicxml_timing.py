"""Timed lyric phrases from a MusicXML score: note durations + divisions + tempo -> seconds.

Score time is counted in quarter notes (``duration / divisions``) and turned into seconds with the
score's tempo map (``<sound tempo>``, or ``<metronome>`` with its beat unit; 120 BPM until the first
mark, as MusicXML specifies). ``<backup>``/``<forward>`` move the cursor, ``<chord/>`` notes share the
previous onset, grace notes take no time. Only the voice that carries the lyrics is read, in the part with
the most lyric syllables. A phrase ends at a rest, a breath mark or a silent gap. Repeats are not unfolded:
the scores the converters read are written out in full. Parsing uses the standard library only.
"""

from __future__ import annotations

import bisect
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_TEMPO = 120.0
_BEAT_UNIT_QUARTERS = {"whole": 4.0, "half": 2.0, "quarter": 1.0, "eighth": 0.5, "16th": 0.25, "32nd": 0.125}


@dataclass
class Syllable:
    text: str
    start_q: float  # quarter notes from the start of the score
    end_q: float


@dataclass
class Phrase:
    start: float  # seconds
    end: float
    syllables: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.syllables)


@dataclass
class TimedScore:
    phrases: list[Phrase]
    end: float  # seconds: end of the last note or rest of the chosen voice
    part_id: str
    tempo_marks: list[tuple[float, float]]  # (quarter position, BPM)


def _int(el: ET.Element | None, default: int = 0) -> int:
    try:
        return int(float((el.text or "").strip())) if el is not None else default
    except ValueError:
        return default


def _tempo_of(el: ET.Element) -> float | None:
    """A tempo mark in quarter notes per minute from a ``<sound>`` or ``<direction>`` element, if any."""
    sound = el if el.tag == "sound" else el.find("sound")
    if sound is not None and sound.get("tempo"):
        try:
            return float(sound.get("tempo"))
        except ValueError:
            pass
    metro = el.find("direction-type/metronome")
    if metro is not None:
        unit = _BEAT_UNIT_QUARTERS.get((metro.findtext("beat-unit") or "quarter").strip(), 1.0)
        if metro.find("beat-unit-dot") is not None:
            unit *= 1.5
        try:
            return float(metro.findtext("per-minute") or "") * unit
        except ValueError:
            return None
    return None


def _lyric_text(note: ET.Element) -> str:
    lyric = note.find("lyric")
    if lyric is None:
        return ""
    return "".join(t.text or "" for t in lyric.findall("text")).strip()


def _events(part: ET.Element) -> tuple[list[tuple[float, float, str, ET.Element]], list[tuple[float, float]]]:
    """(start_q, end_q, voice, note) of every timed note/rest, and the tempo marks, in score order."""
    divisions = 1
    cursor = 0.0
    last_onset = 0.0
    events = []
    tempos: list[tuple[float, float]] = []
    for measure in part.findall("measure"):
        for el in measure:
            if el.tag == "attributes" and el.find("divisions") is not None:
                divisions = max(1, _int(el.find("divisions"), 1))
            elif el.tag in ("direction", "sound"):
                bpm = _tempo_of(el)
                if bpm and bpm > 0:
                    tempos.append((cursor, bpm))
            elif el.tag == "backup":
                cursor -= _int(el.find("duration")) / divisions
            elif el.tag == "forward":
                cursor += _int(el.find("duration")) / divisions
            elif el.tag == "note":
                if el.find("grace") is not None:
                    continue
                length = _int(el.find("duration")) / divisions
                start = last_onset if el.find("chord") is not None else cursor
                if el.find("chord") is None:
                    last_onset = cursor
                    cursor += length
                voice = (el.findtext("voice") or "1").strip()
                events.append((start, start + length, voice, el))
    return events, tempos


class TempoMap:
    """Quarter-note positions -> seconds under piecewise-constant tempo."""

    def __init__(self, marks: list[tuple[float, float]]):
        points: dict[float, float] = {}
        for q, bpm in sorted(marks, key=lambda m: m[0]):
            points[q] = bpm
        if 0.0 not in points:
            points[0.0] = DEFAULT_TEMPO
        self.q = sorted(points)
        self.bpm = [points[q] for q in self.q]
        self.sec = [0.0]
        for i in range(1, len(self.q)):
            self.sec.append(self.sec[-1] + (self.q[i] - self.q[i - 1]) * 60.0 / self.bpm[i - 1])

    def seconds(self, q: float) -> float:
        i = max(0, bisect.bisect_right(self.q, q) - 1)
        return self.sec[i] + (q - self.q[i]) * 60.0 / self.bpm[i]


def _lyric_part(root: ET.Element, path: str | Path) -> ET.Element:
    """The part with the most lyric syllables (the sung voice)."""
    best: tuple[int, ET.Element | None] = (0, None)
    for part in root.findall("part"):
        n = sum(1 for note in part.iter("note") if _lyric_text(note))
        if n > best[0]:
            best = (n, part)
    if best[1] is None:
        raise ValueError(f"{path}: no part carries lyric syllables")
    return best[1]


def _syllables(events: list, voice: Any, max_gap_q: float) -> tuple[list[Syllable], set[int], float]:
    """The voice's syllables, the indices where a phrase starts, and the score's end (quarter notes)."""
    syllables: list[Syllable] = []
    breaks: set[int] = set()  # phrase starts at these syllable indices
    score_end_q = 0.0
    for start, end, v, note in events:
        if v != voice:
            continue
        score_end_q = max(score_end_q, end)
        if note.find("rest") is not None:
            if syllables:
                breaks.add(len(syllables))
            continue
        text = _lyric_text(note)
        if text:
            if syllables and start - syllables[-1].end_q > max_gap_q + 1e-9:
                breaks.add(len(syllables))
            syllables.append(Syllable(text, start, end))
        elif syllables and note.find("chord") is None:
            syllables[-1].end_q = max(syllables[-1].end_q, end)
        if note.find("notations/articulations/breath-mark") is not None and syllables:
            breaks.add(len(syllables))
    return syllables, breaks, score_end_q


def timed_phrases(path: str | Path, *, max_gap_q: float = 0.0) -> TimedScore:
    """Phrases (seconds) of the lyric-carrying voice of ``path``.

    A gap between two syllables longer than ``max_gap_q`` quarter notes (a rest in that voice, or no note)
    starts a new phrase, as does a breath mark. Notes without a syllable extend the previous one (melisma, ties).

    Raises:
        ET.ParseError: not XML. ValueError: no part carries lyric syllables.
    """
    root = ET.parse(path).getroot()
    part = _lyric_part(root, path)
    events, tempos = _events(part)
    voices = Counter(v for _, _, v, note in events if _lyric_text(note))
    voice = voices.most_common(1)[0][0]
    marks = list(tempos)
    for other in root.findall("part"):  # a tempo mark may sit in another part (often the top staff only)
        if other is not part:
            marks += _events(other)[1]
    tmap = TempoMap(marks)
    syllables, breaks, score_end_q = _syllables(events, voice, max_gap_q)
    phrases: list[Phrase] = []
    for i, syl in enumerate(syllables):
        if not phrases or i in breaks:
            phrases.append(Phrase(tmap.seconds(syl.start_q), tmap.seconds(syl.end_q)))
        phrases[-1].syllables.append(syl.text)
        phrases[-1].end = tmap.seconds(syl.end_q)
    return TimedScore(phrases, tmap.seconds(score_end_q), part.get("id", ""), list(zip(tmap.q, tmap.bpm, strict=True)))
