"""Lyrics that follow the audio: release-format strings from timed sections, and cropping to a window.

The release lyric format writes a song as sections joined by `` , ``: vocal sections are ``[verse] text``,
non-vocal ones repeat their tag once per ``seconds_per_tag`` seconds (1 s for the 150 s models, 5 s for the
240 s one). With section timestamps we can rebuild that string for any audio window, so a crop of the audio
gets exactly the lyrics sung inside it. The same rule is applied at token level by the datamodule.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from songbloom.data.manifest import NON_VOCAL_TAGS, SECTION_TAGS, VOCAL_TAGS, Section

SECTION_JOINER = " , "
# A vocal section belongs to a window when at least this fraction of it is inside the window.
VOCAL_INSIDE_FRACTION = 0.5
_TAG_RE = re.compile(r"\[([^\[\]]*)\]")


def tag_count(duration: float, seconds_per_tag: float) -> int:
    """How many times a non-vocal tag is repeated for ``duration`` seconds (0 when under half a tag)."""
    return int(round(max(duration, 0.0) / seconds_per_tag + 1e-9))


def crop_sections(sections: Sequence[Section], start: float, end: float) -> list[Section]:
    """Sections inside ``[start, end)`` with times relative to ``start``.

    Non-vocal sections are clipped to the window. A vocal section is kept (whole text, clipped times) when at
    least half of it lies inside; otherwise its words are mostly sung outside the window and it is dropped.
    """
    out = []
    for s in sections:
        lo, hi = max(s.start, start), min(s.end, end)
        if hi <= lo:
            continue
        if s.vocal and (hi - lo) < VOCAL_INSIDE_FRACTION * s.duration:
            continue
        out.append(Section(s.tag, lo - start, hi - start, s.text))
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
class TokenSection:
    """A timed section already tokenized: ``ids`` are the vocabulary ids of ``[tag] text`` (vocal) or
    of the single tag (non-vocal, repeated by duration when a window is assembled)."""

    tag: str
    start: float
    end: float
    ids: tuple[int, ...]

    @property
    def vocal(self) -> bool:
        return self.tag in VOCAL_TAGS

    def to_json(self) -> dict:
        return {"tag": self.tag, "start": round(self.start, 4), "end": round(self.end, 4), "ids": list(self.ids)}

    @classmethod
    def from_json(cls, d: dict) -> TokenSection:
        return cls(d["tag"], float(d["start"]), float(d["end"]), tuple(int(i) for i in d["ids"]))


def window_lyric_ids(
    sections: Sequence[TokenSection], start: float, end: float, seconds_per_tag: float, separator_ids: Sequence[int]
) -> list[int]:
    """Token ids of the lyrics for the window ``[start, end)`` (same rule as :func:`crop_sections`)."""
    out: list[int] = []
    for s in sections:
        lo, hi = max(s.start, start), min(s.end, end)
        if hi <= lo:
            continue
        if s.vocal:
            if (hi - lo) < VOCAL_INSIDE_FRACTION * (s.end - s.start):
                continue
            part = list(s.ids)
        else:
            part = list(s.ids) * tag_count(hi - lo, seconds_per_tag)
        if not part:
            continue
        if out:
            out.extend(separator_ids)
        out.extend(part)
    return out
