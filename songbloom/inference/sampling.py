"""Sketch-token sampling: CFG on logits, the repetition penalty, temperature / top-k / top-p draws.

Everything works on a batch of rows. Random draws go through one ``torch.Generator`` per row (or the
global RNG when none is given), so a row's tokens do not depend on which other rows share its batch.
The arithmetic mirrors the release (``MVSA_DiTAR._sample_next_block`` and ``base/sample.py``) operation
by operation, because ``torch.multinomial`` must see bit-identical probability rows for seeded runs to
reproduce (docs/design/fidelity.md#top-k-ties).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from songbloom.config.sampling import PENALTY_MODES  # one list, shared with the command-line flags


def cfg_mix(cond: torch.Tensor, uncond: torch.Tensor, coef: float) -> torch.Tensor:
    """``uncond + (cond - uncond) * coef`` in the release's operation order."""
    return uncond + (cond - uncond) * coef


def penalty_pool_presence(pool: torch.Tensor, vocab_size: int, num_pitch: int, mode: str) -> torch.Tensor:
    """Bool mask (rows, vocab_size) of the ids the penalty applies to.

    ``release``: presence of ids ``0 .. num_pitch - 2`` only. The release counts ``bincount(unique(pool))``
    and penalises its first ``min(len, num_pitch - 1)`` entries, so EOS (``num_pitch``) and, as a side
    effect, the last code ``num_pitch - 1`` are never penalised. ``corrected``: every code, EOS excluded.
    """
    rows = pool.shape[0]
    present = torch.zeros(rows, vocab_size, dtype=torch.bool, device=pool.device)
    present.scatter_(1, pool.clamp(0, vocab_size - 1), True)
    limit = num_pitch - 1 if mode == "release" else num_pitch
    present[:, limit:] = False
    return present


def apply_repetition_penalty(
    logits: torch.Tensor, pool: torch.Tensor | None, num_pitch: int, mode: str = "release", factor: float = 1.1
) -> torch.Tensor:
    """Penalise ids present in each row's pool of recent tokens.

    Args:
        logits: (rows, num_pitch + 1) CFG-mixed logits.
        pool: (rows, window) recent token ids (left-padded with EOS), or ``None`` (no penalty).
        mode: ``release`` divides the logit by ``factor`` (a negative logit moves UP, as released);
            ``corrected`` pushes every penalised logit down (divide positives, multiply negatives);
            ``none`` disables the penalty.
    """
    if pool is None or pool.numel() == 0 or mode == "none":
        return logits
    if mode not in PENALTY_MODES:
        raise ValueError(f"repetition penalty mode {mode!r}: choose from {PENALTY_MODES}")
    present = penalty_pool_presence(pool, logits.shape[-1], num_pitch, mode)
    if mode == "release":
        # 1.1 ** count with count in {0, 1}: a float32 tensor of 1.0 / 1.1, exactly as the release builds it.
        divisor = torch.pow(factor, present.long())
        # In-place division in the release: computed in float32, stored back in the logits dtype.
        return (logits / divisor.to(logits.device)).to(logits.dtype)
    return torch.where(present, torch.where(logits > 0, logits / factor, logits * factor), logits)


def _multinomial_rows(probs: torch.Tensor, generators: Sequence[torch.Generator | None] | None) -> torch.Tensor:
    """One draw per row; row i uses ``generators[i]`` (the global RNG when the list is ``None``)."""
    if generators is None:
        return torch.multinomial(probs, num_samples=1)[:, 0]
    if len(generators) != probs.shape[0]:
        raise ValueError(f"{len(generators)} generators for {probs.shape[0]} rows")
    out = [torch.multinomial(probs[i : i + 1], num_samples=1, generator=g)[0, 0] for i, g in enumerate(generators)]
    return torch.stack(out)


def sampling_probs(
    logits: torch.Tensor, temp: float, top_k: int = 0, top_p: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The probability rows handed to ``torch.multinomial`` (release ``sample_top_k`` / ``sample_top_p``).

    Returns (probs, index map): with top-p the probabilities are in descending order and the map
    (rows, vocab) turns a drawn position back into a token id; otherwise the map is ``None``.
    """
    probs = torch.softmax(logits / temp, dim=-1)
    if top_p > 0.0:
        probs_sort, probs_idx = torch.sort(probs, dim=-1, descending=True)
        probs_sum = torch.cumsum(probs_sort, dim=-1)
        mask = probs_sum - probs_sort > top_p
        probs_sort = probs_sort * (~mask).to(probs_sort.dtype)
        probs_sort = probs_sort / probs_sort.sum(dim=-1, keepdim=True)
        return probs_sort, probs_idx
    if top_k > 0:
        kth = torch.topk(probs, min(top_k, probs.shape[-1]), dim=-1).values[..., -1:]
        probs = probs * (probs >= kth).to(probs.dtype)  # ties with the k-th value are kept
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs, None


def sample_tokens(
    probs: torch.Tensor, index_map: torch.Tensor | None, generators: Sequence[torch.Generator | None] | None
) -> torch.Tensor:
    """Draw one token per row from :func:`sampling_probs` output."""
    pos = _multinomial_rows(probs, generators)
    if index_map is None:
        return pos
    return torch.gather(index_map, -1, pos[:, None])[:, 0]
