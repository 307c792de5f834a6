"""The lyric vocabulary (``vocab_g2p.yaml``) and the release's space-split tokenizer.

The released checkpoints index their (330, dim) lyric table by position in this list, so the order is
part of the model: index 0 is the empty string (the pad entry, which is also what an empty item from a
double space becomes), indices 1-7 are the structure tags, the rest are phoneme and punctuation symbols.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import yaml

DEFAULT_VOCAB_PATH = Path(__file__).with_name("vocab_g2p.yaml")

STRUCTURE_SPLIT_TOKENS = (",",)
SENTENCE_SPLIT_TOKENS = (".",)


def load_vocab_list(path: str | Path = DEFAULT_VOCAB_PATH) -> list[str]:
    """Read a ``vocab_g2p.yaml`` file (a flat YAML list of strings) and check its shape."""
    path = Path(path)
    with open(path, encoding="utf-8") as f:
        items = yaml.safe_load(f)
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise ValueError(f"{path}: expected a flat YAML list of strings (the lyric vocabulary)")
    if not items or items[0] != "":
        raise ValueError(f"{path}: entry 0 must be the empty string '' (the pad token), got {items[:1]!r}")
    if len(set(items)) != len(items):
        dup = sorted({x for x in items if items.count(x) > 1})
        raise ValueError(f"{path}: duplicate vocabulary entries {dup[:10]}")
    return items


@dataclass(frozen=True)
class TokenizedLyric:
    """Vocabulary ids of one processed lyric string plus what the vocabulary could not represent."""

    ids: list[int]
    dropped: list[str] = field(default_factory=list)


class Vocabulary:
    """Lyric vocabulary with the release tokenizer: split on single spaces, keep in-vocabulary items.

    Args:
        items: the ordered vocabulary list (entry 0 must be ``''``).
    """

    def __init__(self, items: list[str] | tuple[str, ...]):
        self.items: tuple[str, ...] = tuple(items)
        if not self.items or self.items[0] != "":
            raise ValueError("vocabulary entry 0 must be the empty string '' (the pad token)")
        self.index = {tok: i for i, tok in enumerate(self.items)}

    @classmethod
    def from_file(cls, path: str | Path = DEFAULT_VOCAB_PATH) -> Vocabulary:
        return cls(load_vocab_list(path))

    @classmethod
    def default(cls) -> Vocabulary:
        """The release vocabulary shipped with the package (330 entries)."""
        return cls.from_file(DEFAULT_VOCAB_PATH)

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, token: str) -> bool:
        return token in self.index

    @cached_property
    def structure_ids(self) -> frozenset[int]:
        """Ids of bracket tags such as ``[verse]`` (the release auto-detects entries of the form ``[...]``)."""
        return frozenset(i for i, t in enumerate(self.items) if len(t) > 2 and t.startswith("[") and t.endswith("]"))

    @cached_property
    def structure_split_ids(self) -> frozenset[int]:
        return frozenset(self.index[t] for t in STRUCTURE_SPLIT_TOKENS if t in self.index)

    @cached_property
    def sentence_split_ids(self) -> frozenset[int]:
        return frozenset(self.index[t] for t in SENTENCE_SPLIT_TOKENS if t in self.index)

    def tokenize(self, processed: str | None) -> TokenizedLyric:
        """Tokenize an already-processed lyric string exactly as the release conditioner does.

        ``None`` becomes ``''`` (one id-0 token: the null lyric of the CFG row). Splitting is on single
        spaces, so a double space yields an empty item, which is kept as id 0 (release behaviour).
        """
        text = "" if processed is None else processed
        ids: list[int] = []
        dropped: list[str] = []
        for item in text.split(" "):
            idx = self.index.get(item)
            if idx is None:
                dropped.append(item)
            else:
                ids.append(idx)
        return TokenizedLyric(ids=ids, dropped=dropped)
