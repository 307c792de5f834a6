"""The lyric format: parse, normalise, validate, crop and render.

Canonical form (what the released models were trained on)::

    [intro] [intro] , [verse] line one. line two , [chorus] line three , [outro] [outro]

* vocal sections (``[verse] [chorus] [bridge]``) hold text; sentences are separated by ``.``;
* non-vocal sections (``[intro] [inst] [outro] [silence]``) hold only their tag, repeated once per
  ``seconds_per_tag`` of music (1 s for the 150 s models, 5 s for the 240 s model);
* sections are separated by a space-delimited ``,``; there must be at least one vocal section.

Users write lyrics one line per row, with ``[Verse 1]``-style headers, full-width punctuation or LRC
timestamps. :func:`parse_lyrics` accepts all of that, keeps per-section (and per-line) times when the
input has them, and reports every problem at once with the offending text quoted.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace

from songbloom.text.window import in_window, line_end

logger = logging.getLogger(__name__)

VOCAL_TAGS = ("verse", "chorus", "bridge")
NON_VOCAL_TAGS = ("intro", "inst", "outro", "silence")
# User spellings -> canonical tag (the release's own data tooling maps these the same way).
TAG_ALIASES = {
    "start": "intro", "end": "outro", "solo": "inst", "break": "inst", "instrumental": "inst",
    "interlude": "inst", "pre-chorus": "bridge", "prechorus": "bridge", "hook": "chorus",
}
SECONDS_PER_TAG_150S = 1.0
SECONDS_PER_TAG_240S = 5.0

_TAG_LIST = ", ".join(f"[{t}]" for t in VOCAL_TAGS + NON_VOCAL_TAGS)
_TAG_RE = re.compile(r"\[[^\[\]]*\]")
_LRC_TIME_RE = re.compile(r"\[(\d{1,3}):(\d{1,2}(?:[.:]\d{1,3})?)\]")
_LRC_META_RE = re.compile(r"^\s*\[(ar|ti|al|au|by|re|ve|offset|length|la|#):[^\]]*\]\s*$", re.IGNORECASE)
# In-line punctuation that ends a sentence in the canonical form.
_SENTENCE_BREAK_RE = re.compile(r"\s*(?:[.!?;:,…。！？；：，、]|\.\.\.)+\s*")
_STRIP_CHARS_RE = re.compile(r"[\"“”„‘《》「」『』【】()（）]")
_CURLY_APOSTROPHE = str.maketrans({"’": "'", "＇": "'", "　": " "})


class LyricFormatError(ValueError):
    """The lyric breaks the format; ``problems`` lists every issue found, each quoting its text."""

    def __init__(self, problems: list[LyricProblem], source: str = "lyric"):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s) in the lyric format:\n{lines}")


@dataclass(frozen=True)
class LyricProblem:
    """One format problem: a short ``kind`` code, a message and the text it is about."""

    kind: str
    message: str
    excerpt: str = ""
    line: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        quote = f" (at {self.excerpt!r})" if self.excerpt else ""
        return f"{where}{self.message}{quote} [{self.kind}]"


@dataclass
class Sentence:
    text: str
    start: float | None = None


@dataclass
class Section:
    """One section. ``repeat`` is the tag count of a non-vocal section when no timing is known."""

    tag: str
    sentences: list[Sentence] = field(default_factory=list)
    start: float | None = None
    end: float | None = None
    repeat: int = 1

    @property
    def vocal(self) -> bool:
        return self.tag in VOCAL_TAGS

    @property
    def duration(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return max(0.0, self.end - self.start)

    def tag_count(self, seconds_per_tag: float) -> int:
        """Number of tags a non-vocal section renders to: its duration in tags, else ``repeat``."""
        dur = self.duration
        if dur is None:
            return self.repeat
        return max(1, round(dur / seconds_per_tag))

    def render(self, seconds_per_tag: float = SECONDS_PER_TAG_150S) -> str:
        tag = f"[{self.tag}]"
        if self.vocal:
            return f"{tag} " + ". ".join(s.text for s in self.sentences)
        return " ".join([tag] * self.tag_count(seconds_per_tag))


@dataclass
class Lyric:
    sections: list[Section]

    def render(self, seconds_per_tag: float = SECONDS_PER_TAG_150S) -> str:
        """The canonical single-line string fed to G2P."""
        return " , ".join(s.render(seconds_per_tag) for s in self.sections)

    @property
    def has_times(self) -> bool:
        return any(s.start is not None for s in self.sections)

    def crop(self, t0: float, t1: float) -> Lyric:
        """The part of a timed lyric inside ``[t0, t1)``: for cropping lyrics to an audio training window.

        The window rule of preprocessing and training (:mod:`songbloom.text.window`): a vocal section keeps the
        lines whose midpoint is inside the window (a line runs from its timestamp to the next one, the section's
        end, or at most ``LINE_MAX_SECONDS``; sentences without a time belong to the timed line before them), or,
        without line times, the whole section when its midpoint is inside. Non-vocal sections keep their overlap
        (so they re-render to the right tag count). Times in the result stay absolute.
        """
        if t1 <= t0:
            raise ValueError(f"empty crop window [{t0}, {t1})")
        if not self.has_times:
            raise ValueError("this lyric has no timestamps (use LRC input or Lyric.from_sections with start/end)")
        out: list[Section] = []
        for sec in self.sections:
            if sec.start is None:
                continue
            lo, hi = max(sec.start, t0), min(sec.end if sec.end is not None else float("inf"), t1)
            if not sec.vocal:
                if hi > lo:
                    out.append(replace(sec, start=lo, end=hi, sentences=[]))
                continue
            lines = _timed_lines(sec, sec.start)
            kept = [s for start, end, line in lines if in_window(start, end, t0, t1) for s in line]
            if kept:
                out.append(replace(sec, start=lo, end=hi, sentences=kept))
        return Lyric(out)

    @classmethod
    def from_sections(cls, items: list[dict]) -> Lyric:
        """Build from a manifest field: ``[{"tag": "verse", "text": "a. b", "start": 0.0, "end": 12.5}, ...]``."""
        sections = []
        for i, item in enumerate(items):
            tag = canonical_tag(str(item.get("tag", "")))
            if tag is None:
                raise LyricFormatError([LyricProblem("unknown_tag", f"section {i}: unknown tag", str(item.get("tag")))])
            text = str(item.get("text", "") or "")
            sentences = [Sentence(s) for s in split_sentences(text)]
            sections.append(Section(tag, sentences, item.get("start"), item.get("end")))
        lyric = cls(sections)
        problems = validate_parsed(lyric)
        if problems:
            raise LyricFormatError(problems, "manifest sections")
        return lyric


def _timed_lines(sec: Section, sec_start: float) -> list[tuple[float, float, list[Sentence]]]:
    """(start, end, sentences) of each timed line of a vocal section starting at ``sec_start``; the whole section
    is one line when none of its sentences has a time (it then ends where the section ends, or where it starts)."""
    lines: list[tuple[float, list[Sentence]]] = []
    for s in sec.sentences:
        if s.start is not None or not lines:
            lines.append((s.start if s.start is not None else sec_start, [s]))
        else:
            lines[-1][1].append(s)
    if not any(s.start is not None for s in sec.sentences):
        return [(sec_start, sec.end if sec.end is not None else sec_start, list(sec.sentences))]
    return [
        (start, line_end(start, lines[i + 1][0] if i + 1 < len(lines) else None, sec.end), sentences)
        for i, (start, sentences) in enumerate(lines)
    ]


def canonical_tag(raw: str) -> str | None:
    """``[Verse 2]`` -> ``verse``; None if the tag is not a known structure tag."""
    name = raw.strip().strip("[]").strip().lower()
    name = re.sub(r"[\s_]*\d+$", "", name).strip()
    name = TAG_ALIASES.get(name, name)
    return name if name in VOCAL_TAGS or name in NON_VOCAL_TAGS else None


def split_sentences(text: str) -> list[str]:
    """Split text at sentence punctuation (full- or half-width), dropping empty pieces and quotes."""
    text = _STRIP_CHARS_RE.sub("", text.translate(_CURLY_APOSTROPHE))
    pieces = [re.sub(r"\s+", " ", p).strip() for p in _SENTENCE_BREAK_RE.split(text)]
    return [p for p in pieces if p]


def _parse_lrc_time(match: re.Match) -> float:
    return int(match.group(1)) * 60 + float(match.group(2).replace(":", "."))


@dataclass
class _Item:
    kind: str  # "tag" | "sep" | "word" | "break"
    text: str
    line: int
    time: float | None = None


def _items(text: str) -> tuple[list[_Item], float | None, list[LyricProblem]]:
    items: list[_Item] = []
    problems: list[LyricProblem] = []
    song_end: float | None = None
    text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_CURLY_APOSTROPHE)
    for lineno, line in enumerate(text.split("\n"), start=1):
        if _LRC_META_RE.match(line):
            meta = re.match(r"^\s*\[length:\s*(\d+):(\d+(?:\.\d+)?)\]", line, re.IGNORECASE)
            if meta:
                song_end = int(meta.group(1)) * 60 + float(meta.group(2))
            continue
        time = None
        times = list(_LRC_TIME_RE.finditer(line))
        if times:
            time = _parse_lrc_time(times[0])
            line = _LRC_TIME_RE.sub(" ", line)
        if not line.strip():
            if time is not None:  # a bare timestamp marks the end of the previous line
                items.append(_Item("break", "", lineno, time))
            continue
        first = True
        for chunk in re.split(r"(\[[^\[\]]*\])", line):
            if _TAG_RE.fullmatch(chunk):
                items.append(_Item("tag", chunk, lineno, time if first else None))
                first = False
                continue
            for word in chunk.split():
                if "[" in word or "]" in word:
                    problems.append(LyricProblem("unbalanced_bracket", "unbalanced '[' or ']'", word, lineno))
                    word = word.replace("[", "").replace("]", "")
                    if not word:
                        continue
                kind = "sep" if word in (",", "，") else "word"
                items.append(_Item(kind, word, lineno, time if first else None))
                first = False
        items.append(_Item("break", "", lineno))
    return items, song_end, problems


def parse_lyrics(text: str, strict: bool = True, source: str = "lyric") -> Lyric:
    """Parse (and normalise) a lyric in canonical, one-line-per-row or LRC form.

    With ``strict`` every problem raises one :class:`LyricFormatError` listing them all; otherwise they are
    logged and the best-effort parse is returned.
    """
    lyric, problems = _parse(text)
    problems += validate_parsed(lyric)
    if problems:
        if strict:
            raise LyricFormatError(problems, source)
        for p in problems:
            logger.warning("%s: %s", source, p)
    return lyric


def validate_lyrics(text: str) -> list[LyricProblem]:
    """Every format problem in a lyric (empty list: the lyric is fine)."""
    lyric, problems = _parse(text)
    return problems + validate_parsed(lyric)


def normalize_lyrics(text: str, seconds_per_tag: float = SECONDS_PER_TAG_150S, strict: bool = True) -> str:
    """User lyric -> canonical one-line form (see module docstring)."""
    return parse_lyrics(text, strict=strict).render(seconds_per_tag)


def _parse(text: str) -> tuple[Lyric, list[LyricProblem]]:
    if text is None or not str(text).strip():
        return Lyric([]), [LyricProblem("empty", "the lyric is empty")]
    items, song_end, problems = _items(str(text))
    parser = _Parser(problems)
    for item in items:
        parser.feed(item)
    parser.close_sentence()
    if parser.last_kind == "sep" and parser.sections:
        problems.append(LyricProblem("misplaced_separator", "the lyric ends with a section separator ','", ","))
    _fill_times(parser.sections, song_end)
    return Lyric(parser.sections), problems


class _Parser:
    """Items -> sections and sentences, one item at a time; problems are appended to ``problems``."""

    def __init__(self, problems: list[LyricProblem]) -> None:
        self.problems = problems
        self.sections: list[Section] = []
        self.current: Section | None = None
        self.words: list[str] = []
        self.sentence_time: float | None = None
        self.after_sep = False
        self.last_kind = ""

    def feed(self, item: _Item) -> None:
        handler = {"break": self._on_break, "sep": self._on_sep, "tag": self._on_tag}.get(item.kind, self._on_word)
        handler(item)
        if item.kind != "break":
            self.last_kind = item.kind

    def close_sentence(self) -> None:
        current = self.current
        if current is not None and current.vocal and self.words:
            pieces = split_sentences(" ".join(self.words))
            for k, piece in enumerate(pieces):
                current.sentences.append(Sentence(piece, self.sentence_time if k == 0 else None))
        self.words, self.sentence_time = [], None

    def _problem(self, kind: str, message: str, excerpt: str, item: _Item) -> None:
        self.problems.append(LyricProblem(kind, message, excerpt, item.line))

    def _on_break(self, item: _Item) -> None:
        self.close_sentence()
        if item.time is not None and self.current is not None and self.current.end is None:
            self.current.end = item.time

    def _on_sep(self, item: _Item) -> None:
        self.close_sentence()
        if self.current is None:
            self._problem("misplaced_separator", "section separator ',' before any section", item.text, item)
        elif self.last_kind == "sep":
            self._problem("misplaced_separator", "two section separators in a row (empty section)", ", ,", item)
        self.after_sep = True

    def _on_tag(self, item: _Item) -> None:
        tag = canonical_tag(item.text)
        if tag is None:
            self._problem("unknown_tag", f"unknown structure tag; use one of {_TAG_LIST}", item.text, item)
            return
        self.close_sentence()
        current = self.current
        same_run = current is not None and not current.vocal and current.tag == tag and not self.after_sep
        if same_run and item.time is None:
            current.repeat += 1
        else:
            if current is not None and current.end is None and item.time is not None:
                current.end = item.time
            self.current = Section(tag, start=item.time)
            self.sections.append(self.current)
        self.after_sep = False

    def _on_word(self, item: _Item) -> None:
        current = self.current
        if current is None:
            self._problem("text_before_tag", "text before the first structure tag; start with e.g. [verse]",
                          item.text, item)
            return
        if self.after_sep:
            self._problem("misplaced_separator",
                          "text after a section separator ',' without a new tag; a standalone ',' "
                          "ends a section (use '.' between sentences)", f", {item.text}", item)
            self.after_sep = False
        if not current.vocal:
            self._problem("text_in_non_vocal", f"non-vocal section [{current.tag}] must contain only its tag",
                          f"[{current.tag}] {item.text}", item)
            return
        if not self.words and self.sentence_time is None:
            self.sentence_time = item.time
        if current.start is None and item.time is not None and not current.sentences and not self.words:
            current.start = item.time
        self.words.append(item.text)


def _fill_times(sections: list[Section], song_end: float | None) -> None:
    """Section start = its first timestamp; end = next section's start (LRC gives starts only)."""
    for i, sec in enumerate(sections):
        if sec.start is None:
            firsts = [s.start for s in sec.sentences if s.start is not None]
            sec.start = firsts[0] if firsts else None
    for i, sec in enumerate(sections):
        if sec.start is None:
            continue
        nxt = next((s.start for s in sections[i + 1 :] if s.start is not None), None)
        if nxt is not None and (sec.end is None or sec.end > nxt):
            sec.end = nxt
        elif sec.end is None and i == len(sections) - 1:
            sec.end = song_end


def validate_parsed(lyric: Lyric) -> list[LyricProblem]:
    """Section-level checks on a parsed lyric."""
    problems: list[LyricProblem] = []
    for sec in lyric.sections:
        if sec.vocal and not sec.sentences:
            problems.append(
                LyricProblem("vocal_without_text", f"vocal section [{sec.tag}] has no text", f"[{sec.tag}]")
            )
        if not sec.vocal and sec.sentences:
            problems.append(LyricProblem("text_in_non_vocal", f"non-vocal section [{sec.tag}] has text",
                                         sec.sentences[0].text))
        if sec.start is not None and sec.end is not None and sec.end < sec.start:
            problems.append(LyricProblem("bad_times", f"section [{sec.tag}] ends before it starts",
                                         f"{sec.start:.2f}-{sec.end:.2f}"))
    if lyric.sections and not any(s.vocal for s in lyric.sections):
        problems.append(LyricProblem("no_vocal_section", "no vocal section: add at least one [verse], [chorus] or "
                                     "[bridge] with text"))
    starts = [s.start for s in lyric.sections if s.start is not None]
    if any(b < a for a, b in zip(starts, starts[1:], strict=False)):
        problems.append(LyricProblem("bad_times", "section timestamps go backwards", ""))
    return problems
