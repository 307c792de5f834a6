"""What the lyric front end can read, and the width normalisation applied before G2P.

The front end reads Chinese (hanzi), Japanese (kana and kanji, with ``language="ja"``), and Latin letters and
digits (English G2P). Anything else that is text (Hangul, Cyrillic, Arabic, Thai, emoji and other symbols,
hanzi outside the release's range or kana in a Chinese/English song) used to vanish without a trace; here it
is found and reported as *dropped*, with the text shown. Punctuation, spaces and control characters are not
text and are never reported.

Full-width Latin letters and digits (``ＬＯＶＥ``, ``２０２４``) are normalised to ASCII (NFKC) before G2P so
they are read as words instead of letter by letter. Only those: NFKC on full-width punctuation would change the
release's own punctuation mapping (``：`` is read as ``,`` but NFKC makes it ``:``).
"""

from __future__ import annotations

import re
import unicodedata

_FULLWIDTH_ALNUM = re.compile(r"[\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]+")
_RELEASE_HANZI = re.compile(r"[\u4e00-\u9fa5]")
_IDEOGRAPH = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3005\u3006\u3007]")
_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
_LATIN = re.compile(r"[A-Za-z0-9\u00c0-\u024f\u1e00-\u1eff]")
_EXTRA_READABLE = frozenset("～~$/…·")  # mapped to release punctuation by songbloom.text.g2p


def normalise_width(text: str) -> str:
    """Full-width Latin letters and digits -> ASCII (NFKC of those characters only)."""
    return _FULLWIDTH_ALNUM.sub(lambda m: unicodedata.normalize("NFKC", m.group()), text)


def _readable(ch: str, language: str | None) -> bool:
    if ch.isascii() or ch in _EXTRA_READABLE or _LATIN.match(ch):
        return True
    if language == "ja":
        return bool(_IDEOGRAPH.match(ch) or _KANA.match(ch))
    return bool(_RELEASE_HANZI.match(ch))


def _not_text(ch: str) -> bool:
    """Punctuation, separators, controls, format characters (joiners) and combining marks are not text."""
    cat = unicodedata.category(ch)
    return cat[0] in "PZC" or cat == "Mn"


def unreadable_runs(text: str, language: str | None) -> list[str]:
    """The runs of text characters the front end cannot read for ``language`` (``ja`` reads kana and all kanji;
    ``zh``/``en`` the release's hanzi range and Latin), in order, each as it appears in ``text``."""
    runs: list[str] = []
    cur = ""
    for ch in normalise_width(text):
        if cur and unicodedata.category(ch) in ("Mn", "Cf"):
            cur += ch  # joiners, variation selectors and marks stay with the run they belong to
        elif _not_text(ch) or _readable(ch, language):
            if cur:
                runs.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        runs.append(cur)
    return runs
