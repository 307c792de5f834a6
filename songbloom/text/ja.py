"""Japanese G2P onto the release vocabulary's Japanese symbols, via pyopenjtalk-plus.

pyopenjtalk reads a whole sentence at once (kanji readings depend on context), so the front end hands it
sentences, not space-separated items. Its phoneme set is almost the vocabulary's; the rest is mapped by
:data:`PHONEME_MAP` (documented in docs/lyrics.md):

=========  ===========  ==========================================================================
openjtalk  vocabulary   why
=========  ===========  ==========================================================================
``pau``    (nothing)    a pause at 、 or a space; a pause is not a phoneme, and ``,`` would be
                        read by the model as a section boundary
``sil``    (nothing)    silence at the ends of the utterance
``ty``     ``t y``      テュ: /t/ + palatal glide; the vocabulary has both halves
``fy``     ``f y``      フュ
``kw``     ``k w``      クァ: /k/ + labial glide
``gw``     ``g w``      グァ
``A E O``  ``a e o``    devoiced vowels the vocabulary lacks (it has ``I`` and ``U`` only)
=========  ===========  ==========================================================================
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading

logger = logging.getLogger(__name__)

PHONEME_MAP: dict[str, tuple[str, ...]] = {
    "pau": (),
    "sil": (),
    "ty": ("t", "y"),
    "fy": ("f", "y"),
    "kw": ("k", "w"),
    "gw": ("g", "w"),
    "A": ("a",),
    "E": ("e",),
    "O": ("o",),
}

_lock = threading.Lock()


def _is_kana(ch: str) -> bool:
    return "\u3040" <= ch <= "\u30ff" or "\u31f0" <= ch <= "\u31ff" or "\uff66" <= ch <= "\uff9f"


def contains_kana(text: str) -> bool:
    """True when the text has hiragana or katakana, which only Japanese uses."""
    return any(_is_kana(ch) for ch in text)


def map_phonemes(phonemes: list[str]) -> list[str]:
    """Apply :data:`PHONEME_MAP` to raw pyopenjtalk phonemes."""
    out: list[str] = []
    for ph in phonemes:
        out.extend(PHONEME_MAP.get(ph, (ph,)))
    return out


class JapaneseG2P:
    """Japanese sentence -> vocabulary tokens (the dictionary ships in the pyopenjtalk-plus wheel)."""

    def __init__(self) -> None:
        # pyopenjtalk-plus prints an ONNX Runtime notice on import; keep the library quiet.
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            import pyopenjtalk
        self._pyopenjtalk = pyopenjtalk

    def raw_phonemes(self, sentence: str) -> list[str]:
        """pyopenjtalk's own phonemes for a sentence (``pau`` included)."""
        if not sentence.strip():
            return []
        with _lock:
            out = self._pyopenjtalk.g2p(sentence, kana=False)
        return out.split() if out else []

    def __call__(self, sentence: str) -> list[str]:
        return map_phonemes(self.raw_phonemes(sentence))
