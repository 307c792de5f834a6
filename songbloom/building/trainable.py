"""Which tensors train in full besides the adapters: named sets, and ``auto`` rules that pick them.

Plain data and rules over parameter names; no file I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from torch import nn

from songbloom.building.sketch_tables import SKETCH_CLASSIFIER_KEYS, SKETCH_EMBEDDING_KEYS, SketchTablesLayout

RELEASE_TRAINED_LANGUAGES = ("zh", "en")
"""Languages whose lyric tokens the released checkpoints were trained on."""

FULL_SETS: dict[str, tuple[str, ...]] = {
    # A new sketch codebook changes what every id means: its embedding and the classifier must re-learn.
    "sketch_embedding": SKETCH_EMBEDDING_KEYS,
    "sketch_classifier": SKETCH_CLASSIFIER_KEYS,
    # Lyric tokens the release never saw (e.g. Japanese phonemes) have untrained rows.
    "lyric_embedding": ("condition_provider.conditioners.lyrics.output_proj.weight",),
}


def declared_full_sets(
    trainable_cfg: Mapping[str, Any],
    *,
    source: str,
    new_codebook: bool,
    language: str | None,
    sketch_tables: SketchTablesLayout | None = None,
) -> list[str]:
    """Names of the :data:`FULL_SETS` that train in full, resolving ``auto`` entries.

    ``sketch_embedding: auto`` covers the embedding and the classifier and is on whenever the sketch codebook
    is not the one the weights were trained with (always true for release weights: their codebook is
    unreleased). ``sketch_tables`` (resolved by :func:`~songbloom.building.sketch_tables.resolve_sketch_tables`,
    e.g. for a recovered codebook) decides instead when given. ``lyric_embedding: auto`` is on when the data
    language is one the release never trained.
    """
    sets = []
    if sketch_tables is not None:
        sketch = sketch_tables.trains_in_full
    else:
        sketch = trainable_cfg.get("sketch_embedding", "auto")
        if sketch == "auto":
            sketch = source == "release" or new_codebook
    if sketch:
        sets += ["sketch_embedding", "sketch_classifier"]
    lyric = trainable_cfg.get("lyric_embedding", "auto")
    if lyric == "auto":
        lyric = language is not None and language not in RELEASE_TRAINED_LANGUAGES
    if lyric:
        sets.append("lyric_embedding")
    return sets


def mark_full_sets(model: nn.Module, sets: list[str], extra_regex: str | None = None) -> list[str]:
    """Unfreeze the tensors of ``sets`` (plus names full-matching ``extra_regex``); returns their names."""
    params = dict(model.named_parameters())
    names = []
    for s in sets:
        for n in FULL_SETS[s]:
            if n not in params:
                raise KeyError(f"trainable set {s!r}: parameter {n} not found in the model")
            names.append(n)
    if extra_regex:
        pattern = re.compile(extra_regex)
        hits = [n for n in params if pattern.fullmatch(n)]
        if not hits:
            raise ValueError(f"trainable.extra_regex={extra_regex!r} matches no parameter")
        names += hits
    for n in names:
        params[n].requires_grad_(True)
    return sorted(set(names))
