"""Compare a state dict's keys and shapes with a reference key list (``release_keys_full.json``).

The reference file lists every key and shape the official code builds for the full release configs. Checking
a model built on the meta device against it proves strict loadability without the 7 GB checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from songbloom.checkpoints.strict import format_mismatch_report, state_dict_mismatches

Shape = tuple[int, ...]


@dataclass(frozen=True)
class KeyComparison:
    """Result of :func:`compare_keys`: empty lists mean the key sets and shapes are identical."""

    missing: list[str]  # in the reference, not in the state dict
    unexpected: list[str]  # in the state dict, not in the reference
    mismatched: list[tuple[str, Shape, Shape]]  # (name, reference shape, state-dict shape)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)


def load_reference_keys(path: str | Path, prefix: str | None = None, strip: bool = True) -> dict[str, Shape]:
    """Read ``{"keys": {name: shape}}`` from a reference JSON, optionally only keys under ``prefix``.

    With ``strip`` the prefix is removed, e.g. ``prefix="model."`` gives the generator's own keys.
    """
    path = Path(path)
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict) or not isinstance(data.get("keys"), dict):
        raise ValueError(f"{path}: expected a JSON object with a 'keys' mapping of name -> shape")
    keys = {str(k): tuple(int(x) for x in v) for k, v in data["keys"].items()}
    if prefix is not None:
        keys = {(k[len(prefix) :] if strip else k): v for k, v in keys.items() if k.startswith(prefix)}
    return keys


def shapes_of(state_dict: Mapping[str, Tensor]) -> dict[str, Shape]:
    """``name -> shape`` of a state dict (works for meta tensors: nothing is read)."""
    return {k: tuple(v.shape) for k, v in state_dict.items()}


def compare_keys(
    state_dict: Mapping[str, Tensor] | Mapping[str, Shape], reference: Mapping[str, Shape]
) -> KeyComparison:
    """Compare a state dict (tensors or shapes) with reference shapes."""
    got = {k: (tuple(v.shape) if isinstance(v, Tensor) else tuple(v)) for k, v in state_dict.items()}
    missing, unexpected, mismatched = state_dict_mismatches(reference, got)
    return KeyComparison(missing, unexpected, mismatched)


def assert_keys_match(
    state_dict: Mapping[str, Tensor] | Mapping[str, Shape], reference: Mapping[str, Shape], *, what: str
) -> None:
    """Raise :class:`~songbloom.checkpoints.strict.CheckpointMismatchError` with a readable report unless identical."""
    from songbloom.checkpoints.strict import CheckpointMismatchError

    result = compare_keys(state_dict, reference)
    if not result.ok:
        got = {k: (tuple(v.shape) if isinstance(v, Tensor) else tuple(v)) for k, v in state_dict.items()}
        raise CheckpointMismatchError(
            format_mismatch_report(what, result.missing, result.unexpected, result.mismatched, reference, got),
            missing=result.missing,
            unexpected=result.unexpected,
            mismatched=result.mismatched,
        )
