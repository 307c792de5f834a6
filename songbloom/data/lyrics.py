"""Lyrics that follow the audio: release-format strings from timed sections, and cropping to a window.

The release lyric format writes a song as sections joined by `` , ``: vocal sections are ``[verse] text``,
non-vocal ones repeat their tag once per ``seconds_per_tag`` seconds (1 s for the 150 s models, 5 s for the
240 s one). With section timestamps we can rebuild that string for any audio window, so a crop of the audio
gets exactly the lyrics sung inside it. The same rule is applied at token level by preprocessing (segments) and
by the training streams (crops).

**The window rule** (:mod:`songbloom.text.window`, shared with ``Lyric.crop``). A timed line belongs to the
window that contains its midpoint: a line that straddles the window's edge goes whole to the side where most of
it is sung (at exactly half, to the later window, since windows are ``[start, end)``), so consecutive windows
share no line and lose none. A vocal section without line times counts as one line. Non-vocal sections are
clipped to the window and repeat their tag by the clipped length.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from songbloom.data.manifest import NON_VOCAL_TAGS, SECTION_TAGS, VOCAL_TAGS, Line, Section, lines_text
from songbloom.text.window import in_window

SECTION_JOINER = " , "
_TAG_RE = re.compile(r"\[([^\[\]]*)\]")


def tag_count(duration: float, seconds_per_tag: float) -> int:
    """How many times a non-vocal tag is repeated for ``duration`` seconds (0 when under half a tag)."""
    return int(round(max(duration, 0.0) / seconds_per_tag + 1e-9))


def crop_sections(sections: Sequence[Section], start: float, end: float) -> list[Section]:
    """Sections inside ``[start, end)`` with times relative to ``start`` (the window rule in the module docstring).

    Non-vocal sections are clipped to the window. A vocal section with timed lines keeps the lines whose midpoint
    is inside (its text becomes theirs); one without line times is kept whole when its midpoint is inside.
    """
    out = []
    for s in sections:
        lo, hi = max(s.start, start), min(s.end, end)
        if hi <= lo and not s.vocal:
            continue
        if not s.vocal:
            out.append(Section(s.tag, lo - start, hi - start, s.text))
        elif s.lines:
            inside = [ln for ln in s.lines if in_window(ln.start, ln.end, start, end)]
            kept = tuple(Line(ln.start - start, ln.end - start, ln.text) for ln in inside)
            if kept:
                out.append(Section(s.tag, kept[0].start, kept[-1].end, lines_text(kept), kept))
        elif in_window(s.start, s.end, start, end):
            out.append(Section(s.tag, s.start - start, s.end - start, s.text))
    return out


def sections_to_lyrics(sections: Sequence[Section], seconds_per_tag: float) -> str:
    """Release-format lyric string for timed sections (non-vocal tags expanded by duration)."""
    parts = []
    for s in sections:
        if s.vocal:
            parts.append(f"[{s.tag}] {s.text}")
        else:
            n = tag_count(s.duration, seconds_per_tag)
            if n:
                parts.append(" ".join([f"[{s.tag}]"] * n))
    return SECTION_JOINER.join(parts)


def check_release_lyrics(text: str | None, instrumental: bool = False) -> str | None:
    """Return why ``text`` is not usable release-format lyrics, or None when it is fine."""
    if text is None or not text.strip():
        return None if instrumental else 'lyrics are empty (set "instrumental": true for songs without vocals)'
    tags = _TAG_RE.findall(text)
    if not tags:
        return "no structure tag: each section must start with one of " + ", ".join(f"[{t}]" for t in SECTION_TAGS)
    unknown = sorted({t for t in tags if t.lower() not in SECTION_TAGS})
    if unknown:
        return f"unknown structure tags {['[' + t + ']' for t in unknown]}; use one of {list(SECTION_TAGS)}"
    if text.count("[") != text.count("]"):
        return "unbalanced brackets"
    has_vocal = any(t.lower() in VOCAL_TAGS for t in tags)
    if not has_vocal and not instrumental:
        return "only non-vocal tags but the song is not marked instrumental"
    for chunk in re.split(r"\s*,\s*(?=\[)", text.strip()):
        chunk_tags = [t.lower() for t in _TAG_RE.findall(chunk)]
        body = _TAG_RE.sub("", chunk).strip(" ,.")
        if not chunk_tags:
            return f"section {chunk[:30]!r} does not start with a structure tag"
        if chunk_tags[0] in VOCAL_TAGS and not body:
            return f"vocal section [{chunk_tags[0]}] has no text"
        if chunk_tags[0] in NON_VOCAL_TAGS and body:
            return f"non-vocal section [{chunk_tags[0]}] carries text {body[:30]!r}"
    return None


@dataclass(frozen=True)
class TokenLine:
    """A timed line already tokenized (its ids without the section tag)."""

    start: float
    end: float
    ids: tuple[int, ...]

    def to_json(self) -> dict:
        return {"start": round(self.start, 4), "end": round(self.end, 4), "ids": list(self.ids)}

    @classmethod
    def from_json(cls, d: dict) -> TokenLine:
        return cls(float(d["start"]), float(d["end"]), tuple(int(i) for i in d["ids"]))


@dataclass(frozen=True)
class TokenSection:
    """A timed section already tokenized: ``ids`` are the vocabulary ids of ``[tag] text`` (vocal) or
    of the single tag (non-vocal, repeated by duration when a window is assembled).

    ``lines``: the section's timed lines; ``ids`` is then the tag's ids followed by every line's ids, and a
    window takes the tag's ids and the ids of the lines inside it."""

    tag: str
    start: float
    end: float
    ids: tuple[int, ...]
    lines: tuple[TokenLine, ...] = ()

    @property
    def vocal(self) -> bool:
        return self.tag in VOCAL_TAGS

    @property
    def head_ids(self) -> tuple[int, ...]:
        """The ids before the first line (the tag's)."""
        return self.ids[: len(self.ids) - sum(len(ln.ids) for ln in self.lines)]

    def to_json(self) -> dict:
        d = {"tag": self.tag, "start": round(self.start, 4), "end": round(self.end, 4), "ids": list(self.ids)}
        if self.lines:
            d["lines"] = [ln.to_json() for ln in self.lines]
        return d

    @classmethod
    def from_json(cls, d: dict) -> TokenSection:
        lines = tuple(TokenLine.from_json(x) for x in d.get("lines") or ())
        return cls(d["tag"], float(d["start"]), float(d["end"]), tuple(int(i) for i in d["ids"]), lines)

    def shifted(self, by: float) -> TokenSection:
        """The same section with every time minus ``by`` (segment-relative times)."""
        lines = tuple(TokenLine(ln.start - by, ln.end - by, ln.ids) for ln in self.lines)
        return TokenSection(self.tag, self.start - by, self.end - by, self.ids, lines)

    def window_part(self, start: float, end: float, seconds_per_tag: float) -> list[int]:
        """This section's ids in the window ``[start, end)`` (empty when none of it belongs there)."""
        if not self.vocal:
            lo, hi = max(self.start, start), min(self.end, end)
            return list(self.ids) * tag_count(hi - lo, seconds_per_tag) if hi > lo else []
        if not self.lines:
            return list(self.ids) if in_window(self.start, self.end, start, end) else []
        kept = [i for ln in self.lines if in_window(ln.start, ln.end, start, end) for i in ln.ids]
        return list(self.head_ids) + kept if kept else []

    def window_lines(self, start: float, end: float) -> list[tuple[float, float]]:
        """(start, end) of the timed lines (or, without line times, the vocal section) inside the window."""
        if not self.vocal:
            return []
        spans = [(ln.start, ln.end) for ln in self.lines] if self.lines else [(self.start, self.end)]
        return [(a, b) for a, b in spans if in_window(a, b, start, end)]


def window_lyric_ids(
    sections: Sequence[TokenSection], start: float, end: float, seconds_per_tag: float, separator_ids: Sequence[int]
) -> list[int]:
    """Token ids of the lyrics for the window ``[start, end)`` (same rule as :func:`crop_sections`)."""
    out: list[int] = []
    for s in sections:
        part = s.window_part(start, end, seconds_per_tag)
        if not part:
            continue
        if out:
            out.extend(separator_ids)
        out.extend(part)
    return out


def window_vocals(sections: Sequence[TokenSection], start: float, end: float) -> tuple[int, float]:
    """(lines, seconds of vocals) in the window: the lines it takes and their time clipped to the window."""
    spans = [sp for s in sections for sp in s.window_lines(start, end)]
    return len(spans), sum(max(0.0, min(b, end) - max(a, start)) for a, b in spans)
