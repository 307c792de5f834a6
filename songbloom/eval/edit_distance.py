"""Levenshtein distance and error rates (WER / CER / PER) over token sequences."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass


def edit_distance(reference: Sequence[Hashable], hypothesis: Sequence[Hashable]) -> int:
    """Minimum substitutions + insertions + deletions turning ``reference`` into ``hypothesis``.

    Two rolling rows: O(len(ref) * len(hyp)) time, O(len(hyp)) memory.
    """
    ref, hyp = list(reference), list(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        current = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h))
        previous = current
    return previous[-1]


@dataclass
class ErrorCounts:
    """Edits and reference length summed over utterances: the corpus-level rate is edits / reference tokens."""

    edits: int = 0
    reference_tokens: int = 0
    utterances: int = 0

    def add(self, reference: Sequence[Hashable], hypothesis: Sequence[Hashable]) -> int:
        edits = edit_distance(reference, hypothesis)
        self.edits += edits
        self.reference_tokens += len(reference)
        self.utterances += 1
        return edits

    @property
    def rate(self) -> float:
        if self.reference_tokens == 0:
            raise ValueError("error rate is undefined: the references hold no tokens")
        return self.edits / self.reference_tokens


def error_rate(references: Sequence[Sequence[Hashable]], hypotheses: Sequence[Sequence[Hashable]]) -> float:
    """Corpus error rate: total edits / total reference tokens (not a mean of per-utterance rates)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"got {len(references)} references and {len(hypotheses)} hypotheses")
    counts = ErrorCounts()
    for ref, hyp in zip(references, hypotheses, strict=True):
        counts.add(ref, hyp)
    return counts.rate
