"""Lyric -> vocabulary ids, reporting what the release conditioner would silently lose.

The release keeps only in-vocabulary items and cuts the id list at ``max_len``; both losses are
invisible there. Here they are returned with the ids and, by policy, raised (``error``, the default for
dataset builds so every problem line gets reported), logged (``warn``) or accepted (``drop``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Literal

from songbloom.text.scripts import unreadable_runs
from songbloom.text.vocab import Vocabulary

logger = logging.getLogger(__name__)

Policy = Literal["error", "warn", "drop"]
POLICIES: tuple[str, ...] = ("error", "warn", "drop")
DEFAULT_MAX_LEN = 600


class LyricTokenError(ValueError):
    """A lyric lost tokens (not in the vocabulary) or was longer than the conditioner's ``max_len``."""

    def __init__(self, message: str, encoding: LyricEncoding):
        super().__init__(message)
        self.encoding = encoding


@dataclass(frozen=True)
class LyricEncoding:
    """Ids as the conditioner will embed them, plus the losses on the way."""

    processed: str
    tokens: list[str]
    ids: list[int]
    dropped: list[str] = field(default_factory=list)
    truncated: bool = False
    num_tokens_before_truncation: int = 0

    @property
    def ok(self) -> bool:
        return not self.dropped and not self.truncated

    def problems(self) -> list[str]:
        out = []
        if self.dropped:
            shown = ", ".join(repr(t) for t in self.dropped[:20])
            more = f" (+{len(self.dropped) - 20} more)" if len(self.dropped) > 20 else ""
            out.append(
                f"{len(self.dropped)} item(s) not in the vocabulary or unreadable by the front end would be dropped: "
                f"{shown}{more}"
            )
        if self.truncated:
            out.append(
                f"{self.num_tokens_before_truncation} tokens exceed max_len={len(self.ids)}: the last "
                f"{self.num_tokens_before_truncation - len(self.ids)} would be cut (shorten the lyric)"
            )
        return out


class LyricTokenizer:
    """Raw or processed lyric -> :class:`LyricEncoding` with a loss policy.

    Args:
        vocab: the lyric vocabulary (release vocabulary by default).
        max_len: the lyric conditioner's ``max_len`` (600 for the 150 s models, 1000 for 240 s).
        policy: ``error`` | ``warn`` | ``drop``.
        g2p: a :class:`~songbloom.text.g2p.LyricG2P`; the shared default one if omitted.
    """

    def __init__(
        self, vocab: Vocabulary | None = None, max_len: int = DEFAULT_MAX_LEN, policy: str = "error", g2p=None
    ):
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
        if max_len <= 0:
            raise ValueError(f"max_len must be positive, got {max_len}")
        self.vocab = vocab or Vocabulary.default()
        self.max_len = max_len
        self.policy = policy
        self._g2p = g2p

    @classmethod
    def from_config(cls, config, policy: str = "error") -> LyricTokenizer:
        """Vocabulary and ``max_len`` from a ``SongBloomConfig`` (or its ``ModelConfig``)."""
        model = getattr(config, "model", config)
        return cls(Vocabulary(list(model.lyric_vocab)), max_len=int(model.lyric_max_len), policy=policy)

    @property
    def g2p(self):
        if self._g2p is None:
            from songbloom.text.g2p import LyricG2P, default_g2p

            self._g2p = default_g2p() if self.vocab.items == Vocabulary.default().items else LyricG2P(self.vocab)
        return self._g2p

    def encode_processed(self, processed: str, where: str = "lyric", policy: str | None = None) -> LyricEncoding:
        """Tokenize an already-processed string (release semantics: split on single spaces)."""
        result = self.vocab.tokenize(processed)
        keep = [t for t in ("" if processed is None else processed).split(" ") if t in self.vocab]
        ids = result.ids[: self.max_len]
        encoding = LyricEncoding(
            processed=processed or "",
            tokens=keep[: self.max_len],
            ids=ids,
            dropped=list(result.dropped),
            truncated=len(result.ids) > self.max_len,
            num_tokens_before_truncation=len(result.ids),
        )
        self._apply_policy(encoding, where, policy or self.policy)
        return encoding

    def encode(self, lyric: str, language: str | None = None, where: str = "lyric", policy: str | None = None):
        """Run G2P on a raw lyric, then :meth:`encode_processed`. ``where`` names the item in messages.

        Text the front end cannot read (:func:`songbloom.text.scripts.unreadable_runs`: Hangul, emoji, ...) counts
        as dropped, listed first, as it appears in the lyric; ``language`` None is detected on the whole lyric."""
        from songbloom.text.g2p import detect_language

        language = language or detect_language(lyric)
        processed = self.g2p(lyric, language=language)
        encoding = self.encode_processed(processed, where=where, policy="drop")
        unreadable = unreadable_runs(lyric, language)
        if unreadable:
            encoding = replace(encoding, dropped=unreadable + list(encoding.dropped))
        self._apply_policy(encoding, where, policy or self.policy)
        return encoding

    __call__ = encode

    @staticmethod
    def _apply_policy(encoding: LyricEncoding, where: str, policy: str) -> None:
        if encoding.ok or policy == "drop":
            return
        message = f"{where}: " + "; ".join(encoding.problems())
        if policy == "error":
            raise LyricTokenError(message, encoding)
        logger.warning(message)
