"""English part-of-speech tagger that gives the same tags as NLTK's averaged perceptron tagger.

The official front end picks between the readings of a homograph (``read``, ``live``, ``lead``, ...) by
the tag NLTK's ``pos_tag`` gives the word, tagged together with the other tokens of its text segment. This
module runs the same greedy averaged-perceptron model from ``data/en_pos_tagger.json.gz`` (converted once
from the official ``nltk_data`` by ``scripts/convert_official_g2p_data.py``; nothing is unpickled here).

A token's tag is the tag dictionary's entry for it (frequent, unambiguous words, case-sensitive), or else
the highest-scoring class over 14 context features: the token's suffix and first letter, the two previous
tags, the normalised words two to the left and two to the right and the suffixes of their neighbours.
Scores are summed in the stored order and ties go to the alphabetically last tag, as NLTK does.
"""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from pathlib import Path

TAGGER_PATH = Path(__file__).with_name("data") / "en_pos_tagger.json.gz"
FORMAT = "songbloom-averaged-perceptron-1"
_START = ("-START-", "-START2-")
_END = ("-END-", "-END2-")


def context_word(token: str) -> str:
    """The form a token takes as context: hyphenated words, years and numbers are folded to classes."""
    if "-" in token and not token.startswith("-"):
        return "!HYPHEN"
    if token.isdigit() and len(token) == 4:
        return "!YEAR"
    if token[:1].isdigit():
        return "!DIGITS"
    return token.lower()


def features(token: str, context: list[str], i: int, prev: str, prev2: str) -> list[str]:
    """Feature names for the token at ``context[i]`` (``context`` is padded with two markers each side)."""
    word = context[i]
    return [
        "bias",
        f"i suffix {token[-3:]}",
        f"i pref1 {token[:1]}",
        f"i-1 tag {prev}",
        f"i-2 tag {prev2}",
        f"i tag+i-2 tag {prev} {prev2}",
        f"i word {word}",
        f"i-1 tag+i word {prev} {word}",
        f"i-1 word {context[i - 1]}",
        f"i-1 suffix {context[i - 1][-3:]}",
        f"i-2 word {context[i - 2]}",
        f"i+1 word {context[i + 1]}",
        f"i+1 suffix {context[i + 1][-3:]}",
        f"i+2 word {context[i + 2]}",
    ]


class PerceptronTagger:
    """Greedy left-to-right tagger over stored weights (see the module docstring)."""

    def __init__(self, path: Path = TAGGER_PATH) -> None:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            data = json.load(f)
        if data.get("format") != FORMAT:
            raise ValueError(f"{path}: not a tagger file of format {FORMAT!r}")
        self.classes: list[str] = data["classes"]
        self.tagdict: dict[str, str] = data["tagdict"]
        scale = data["weight_scale"]
        # Each feature's weights as (class, weight) pairs in the stored order; k / scale is the exact float.
        self.weights: dict[str, tuple[tuple[str, float], ...]] = {
            feat: tuple((self.classes[flat[j]], flat[j + 1] / scale) for j in range(0, len(flat), 2))
            for feat, flat in data["weights"].items()
        }

    def predict(self, names: list[str]) -> str:
        scores = dict.fromkeys(self.classes, 0.0)
        for name in dict.fromkeys(names):  # each feature counts once (the names are distinct anyway)
            for label, weight in self.weights.get(name, ()):
                scores[label] += weight
        return max(self.classes, key=lambda label: (scores[label], label))

    def tag(self, tokens: list[str]) -> list[tuple[str, str]]:
        context = [*_START, *(context_word(t) for t in tokens), *_END]
        prev, prev2 = _START
        out: list[tuple[str, str]] = []
        for i, token in enumerate(tokens):
            tag = self.tagdict.get(token) or self.predict(features(token, context, i + 2, prev, prev2))
            out.append((token, tag))
            prev2, prev = prev, tag
        return out


@lru_cache(maxsize=1)
def default_tagger() -> PerceptronTagger:
    """The shipped tagger, loaded once per process (about a second)."""
    return PerceptronTagger()
