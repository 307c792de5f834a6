"""What every export records about where it came from, including the licences of its weights and data."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from songbloom.licences import warn_if_non_commercial

logger = logging.getLogger(__name__)

EXPORT_FORMAT_VERSION = 1
# The language the model was trained on (the run config's text.language; None when the run did not set one):
# infer.py reads an item's lyrics in it when neither the item nor --language names one.
TRAINING_LANGUAGE_KEY = "training_language"


def run_language(run_config: Any) -> str | None:
    """``text.language`` of a run config (the typed one, or a mapping as stored in training checkpoints), or None."""
    if run_config is not None and not isinstance(run_config, Mapping):
        language = getattr(getattr(run_config, "text", None), "language", None)
        return str(language) if language else None
    text = (run_config or {}).get("text") or {}
    language = text.get("language") if isinstance(text, Mapping) else None
    return str(language) if language else None


def recorded_language(meta: Mapping[str, Any] | None) -> str | None:
    """The training language an export's metadata records, or None (older exports, release downloads)."""
    language = (meta or {}).get(TRAINING_LANGUAGE_KEY)
    return str(language) if language else None


def checkpoint_licences(checkpoint: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The licence records a training checkpoint carries (``songbloom_licences``), or an empty list."""
    records = checkpoint.get("songbloom_licences") or []
    if not isinstance(records, Sequence) or isinstance(records, str | bytes):
        raise ValueError(f"checkpoint['songbloom_licences'] must be a list of records, got {type(records).__name__}")
    return [dict(r) for r in records]


def warn_non_commercial(records: list[dict[str, Any]], what: str) -> None:
    """Warn when any record forbids commercial use (``songbloom.licences.warn_if_non_commercial``)."""
    if records:
        warn_if_non_commercial(records, what)


def export_metadata(
    kind: str, *, source: str | None = None, licences: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    """The metadata block written beside an export (``kind``: release | merged | peft_adapter)."""
    records = list(licences or [])
    warn_non_commercial(records, f"the {kind} export of {source or 'this model'}")
    return {
        "songbloom_export": kind,
        "version": EXPORT_FORMAT_VERSION,
        "source": source,
        "licences": records,
        **extra,
    }
