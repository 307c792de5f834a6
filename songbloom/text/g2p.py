"""Lyric string -> release-style processed string (tags, ``,`` ``.`` and phoneme symbols, space-separated).

Chinese and English follow the release front end item by item (that is what the checkpoints saw):

* the lyric is split on single spaces; an item that is already a vocabulary symbol or structure tag is
  kept as is (so ``I``, ``a``, ``my``, ``M`` stay raw), an empty item stays empty (id 0 later);
* every other item is split by script into hanzi runs, other runs and the marks ``, . ! ? … -``;
  hanzi runs go to :class:`~songbloom.text.zh.ChineseG2P`, other runs (Latin, digits) to
  :class:`~songbloom.text.en.EnglishG2P`, so numbers are read in English even inside Chinese.

Japanese (which the release never had) is handled per sentence, because pyopenjtalk needs context to
read kanji: a song where kana are at least 10% of the CJK characters (or ``language="ja"``) is read as
Japanese, kanji-only words included. Latin words inside Japanese go to English G2P unless
``japanese_latin="pyopenjtalk"`` asks for pyopenjtalk's katakana-style reading.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Literal

from songbloom.text.scripts import normalise_width
from songbloom.text.vocab import Vocabulary

logger = logging.getLogger(__name__)

Language = Literal["zh", "en", "ja"]
LANGUAGES: tuple[str, ...] = ("zh", "en", "ja")

STRUCTURE_TAGS = ("[verse]", "[chorus]", "[bridge]", "[intro]", "[outro]", "[inst]", "[silence]")
SPLIT_MARKS = frozenset(",.!?…-")
# Full-width and other punctuation -> the release's ASCII marks (applied before script splitting).
PUNCTUATION_MAP = {
    "：": ",", "；": ",", "，": ",", "。": ".", "！": "!", "？": "?", "\n": ".", "·": ",", "、": ",",
    "...": "…", "$": ".", "/": ",", "—": "-", "~": "…", "～": "…",
}
_PUNCT_RE = re.compile("|".join(re.escape(k) for k in sorted(PUNCTUATION_MAP, key=len, reverse=True)))
_HANZI_RE = re.compile(r"[\u4e00-\u9fa5]")
_CJK_IDEOGRAPH_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\u3005]")
_JA_SENTENCE_END = re.compile(r"([.。!！?？\n]+)")
_LATIN_RUN = re.compile(r"[A-Za-z][A-Za-z'’\-]*(?:\s+[A-Za-z][A-Za-z'’\-]*)*")
_JA_END_TOKEN = {"。": ".", ".": ".", "!": "!", "！": "!", "?": "?", "？": "?", "\n": "."}


def map_punctuation(text: str) -> str:
    return _PUNCT_RE.sub(lambda m: PUNCTUATION_MAP[m.group()], text)


def split_by_script(text: str) -> list[tuple[str, str]]:
    """Split one item into (segment, kind) with kind ``zh`` (hanzi run), ``en`` (anything else) or ``sp``."""
    text = map_punctuation(text)
    out: list[tuple[str, str]] = []
    buf = ""

    def flush() -> None:
        nonlocal buf
        if buf:
            out.append((buf, "zh" if _HANZI_RE.match(buf[0]) else "en"))
            buf = ""

    for ch in text:
        if ch in SPLIT_MARKS:
            flush()
            out.append((ch, "sp"))
        elif _HANZI_RE.match(ch):
            if buf and not _HANZI_RE.match(buf[-1]):
                flush()
            buf += ch
        else:
            if buf and _HANZI_RE.match(buf[-1]):
                flush()
            buf += ch
    flush()
    return out


def detect_language(text: str) -> Language:
    """Song-level language: ``ja`` when kana make up a real share of the CJK text, else ``zh`` or ``en``.

    Kanji-only words carry no signal of their own, so the decision is made on the whole text and then
    applied to every line (this is what lets 東京 in a Japanese song be read ``t o o ky o o``).
    """
    from songbloom.text.ja import contains_kana

    text = normalise_width(text)
    kana = sum(1 for ch in text if contains_kana(ch))
    ideographs = len(_CJK_IDEOGRAPH_RE.findall(text))
    if kana and kana >= 0.1 * (kana + ideographs):
        return "ja"
    if ideographs:
        return "zh"
    return "en"


class LyricG2P:
    """The whole lyric front end. Language back ends load lazily on first use and are then reused.

    Args:
        vocab: the vocabulary whose symbols count as already-processed items (release vocabulary by default).
        japanese_latin: how Latin words inside Japanese text are read: ``english`` (ARPAbet) or
            ``pyopenjtalk`` (its letter-by-letter Japanese reading, as plain pyopenjtalk does).
    """

    def __init__(self, vocab: Vocabulary | None = None, japanese_latin: str = "english"):
        if japanese_latin not in ("english", "pyopenjtalk"):
            raise ValueError(f"japanese_latin must be 'english' or 'pyopenjtalk', got {japanese_latin!r}")
        self.vocab = vocab or Vocabulary.default()
        self.japanese_latin = japanese_latin
        self.tags = frozenset(t for t in self.vocab.items if t.startswith("[") and t.endswith("]") and len(t) > 2)
        self.symbols = frozenset(t for t in self.vocab.items if t and t not in self.tags)
        self._zh = None
        self._en = None
        self._ja = None
        self._lock = threading.Lock()

    # ----- back ends --------------------------------------------------------------------------------
    def _backend(self, name: str) -> Callable[[str], list[str]]:
        with self._lock:
            if name == "zh" and self._zh is None:
                from songbloom.text.zh import ChineseG2P

                self._zh = ChineseG2P()
            elif name == "en" and self._en is None:
                from songbloom.text.en import EnglishG2P

                self._en = EnglishG2P()
                self._en.symbols = self.symbols
            elif name == "ja" and self._ja is None:
                from songbloom.text.ja import JapaneseG2P

                self._ja = JapaneseG2P()
        return {"zh": self._zh, "en": self._en, "ja": self._ja}[name]

    @property
    def chinese(self):
        return self._backend("zh")

    @property
    def english(self):
        return self._backend("en")

    @property
    def japanese(self):
        return self._backend("ja")

    # ----- release-compatible item path (zh / en) ---------------------------------------------------
    def item_phonemes(self, item: str) -> list[str]:
        """G2P of one space-free item with the release's script split."""
        phones: list[str] = []
        for segment, kind in split_by_script(item):
            if kind == "sp":
                phones.append(segment)
            elif kind == "zh":
                phones.extend(self.chinese(segment))
            else:
                phones.extend(self.english(segment))
        return phones

    def process_release(self, text: str) -> str:
        """Chinese/English lyric -> processed string, item by item (the release algorithm)."""
        items = text.split(" ")
        for i, item in enumerate(items):
            if item and item not in self.symbols and item not in self.tags:
                items[i] = " ".join(self.item_phonemes(item))
        return " ".join(items)

    # ----- Japanese sentence path -------------------------------------------------------------------
    def japanese_sentence(self, sentence: str) -> list[str]:
        """One Japanese sentence (may contain Latin words and digits) -> tokens."""
        if self.japanese_latin == "pyopenjtalk":
            return self.japanese(sentence)
        phones: list[str] = []
        pos = 0
        for m in _LATIN_RUN.finditer(sentence):
            phones.extend(self.japanese(sentence[pos : m.start()]))
            phones.extend(self.english(m.group()))
            pos = m.end()
        phones.extend(self.japanese(sentence[pos:]))
        return phones

    def process_japanese(self, text: str) -> str:
        """Japanese lyric -> processed string: tags and `` , `` kept, sentences read by pyopenjtalk."""
        out: list[str] = []
        pending: list[str] = []

        def flush() -> None:
            if not pending:
                return
            for piece in _JA_SENTENCE_END.split(" ".join(pending)):
                if not piece:
                    continue
                if _JA_SENTENCE_END.fullmatch(piece):
                    out.extend(_JA_END_TOKEN[ch] for ch in piece if ch in _JA_END_TOKEN)
                else:
                    out.extend(self.japanese_sentence(piece))
            pending.clear()

        for item in text.split(" "):
            if item in self.tags or item == "," or item == "":
                flush()
                out.append(item)
            else:
                pending.append(item)
        flush()
        return " ".join(out)

    # ----- entry point ------------------------------------------------------------------------------
    def __call__(self, text: str, language: str | None = None) -> str:
        text = normalise_width(text)  # full-width Latin letters and digits -> ASCII (songbloom.text.scripts)
        if language is None:
            language = detect_language(text)
        if language not in LANGUAGES:
            raise ValueError(f"unknown language {language!r}: use one of {', '.join(LANGUAGES)} (or None to detect)")
        if language == "ja":
            return self.process_japanese(text)
        return self.process_release(text)


_default: LyricG2P | None = None
_default_lock = threading.Lock()


def default_g2p() -> LyricG2P:
    """A process-wide front end, so the slow back-end loads happen once."""
    global _default
    with _default_lock:
        if _default is None:
            _default = LyricG2P()
        return _default


def process_lyrics(text: str, language: str | None = None) -> str:
    """Raw lyric -> the release-style processed string (tags, ``,``, ``.``, phonemes, single spaces).

    ``language`` (``zh``/``en``/``ja``) overrides detection; ``zh`` and ``en`` both use the release's
    mixed Chinese/English path, so they only matter in forcing a kanji-only text away from Japanese.
    """
    return default_g2p()(text, language=language)
