"""Licences of everything that goes into a model: data items, the MuQ weights behind the sketch codebook, the base.

A model inherits the terms of what it was trained from. The MuQ weights are CC-BY-NC-4.0, jaCappella has a
research-only licence, Kiritan its own terms, and a user's folder is "unknown" until they say otherwise. Each
input is described by a small record ``{"name", "licence", "url", "commercial"}`` (plus ``items`` for
aggregated data), records travel from manifests to the shard index, into training checkpoints
(``checkpoint["songbloom_licences"]``) and export metadata, and :func:`warn_if_non_commercial` says when the
result cannot be used commercially. ``commercial`` is True only for licences known to allow it: an unknown or
unrecognised licence counts as not (yet) cleared for commercial use.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

UNKNOWN = "unknown"
CHECKPOINT_KEY = "songbloom_licences"


@dataclass(frozen=True)
class KnownLicence:
    licence: str
    url: str | None
    commercial: bool
    aliases: tuple[str, ...] = ()


KNOWN_LICENCES: tuple[KnownLicence, ...] = (
    KnownLicence("CC-BY-NC-4.0", "https://creativecommons.org/licenses/by-nc/4.0/", False, ("cc by-nc 4.0",)),
    KnownLicence("CC-BY-NC-SA-4.0", "https://creativecommons.org/licenses/by-nc-sa/4.0/", False),
    KnownLicence("CC-BY-NC-ND-4.0", "https://creativecommons.org/licenses/by-nc-nd/4.0/", False),
    KnownLicence("CC-BY-4.0", "https://creativecommons.org/licenses/by/4.0/", True, ("cc by 4.0",)),
    KnownLicence("CC-BY-SA-4.0", "https://creativecommons.org/licenses/by-sa/4.0/", True),
    KnownLicence("CC0-1.0", "https://creativecommons.org/publicdomain/zero/1.0/", True, ("cc0",)),
    KnownLicence("MIT", "https://opensource.org/license/mit", True),
    KnownLicence("Apache-2.0", "https://www.apache.org/licenses/LICENSE-2.0", True),
    KnownLicence(
        "jaCappella-research",
        "https://huggingface.co/datasets/jaCappella/jaCappella",
        False,
        ("jacappella", "jacappella corpus licence", "jacappella licence"),
    ),
    KnownLicence(
        "Tohoku-Kiritan-singing-DB-terms",
        None,  # terms come with the manual download; read them there
        False,
        ("kiritan", "tohoku kiritan singing db terms"),
    ),
    KnownLicence(UNKNOWN, None, False, ("", "none", "unspecified")),
)
MUQ_WEIGHTS_NAME = "MuQ weights (sketch tokenizer features)"
MUQ_WEIGHTS_URL = "https://huggingface.co/OpenMuQ/MuQ-large-msd-iter"


def _lookup(licence: str) -> KnownLicence | None:
    key = licence.strip().lower()
    for known in KNOWN_LICENCES:
        names = (known.licence.lower(), *known.aliases)
        # "CC0-1.0 (synthetic)": an identifier followed by a remark still counts as that licence.
        if key in names or any(key.startswith(n + " ") for n in names if n):
            return known
    return None


def canonical_licence(licence: str | None) -> str:
    """The identifier we use for ``licence`` (``unknown`` for None/empty; unrecognised strings kept as given)."""
    if licence is None:
        return UNKNOWN
    known = _lookup(str(licence))
    return known.licence if known else str(licence).strip()


def licence_record(
    name: str, licence: str | None, url: str | None = None, commercial: bool | None = None, items: int | None = None
) -> dict[str, Any]:
    """One record; ``url`` and ``commercial`` default to what we know about ``licence`` (unrecognised: False)."""
    known = _lookup(str(licence)) if licence is not None else _lookup(UNKNOWN)
    rec: dict[str, Any] = {
        "name": str(name),
        "licence": known.licence if known else str(licence).strip(),
        "url": url if url is not None else (known.url if known else None),
        "commercial": bool(commercial) if commercial is not None else (known.commercial if known else False),
    }
    if items is not None:
        rec["items"] = int(items)
    return rec


def muq_weights_record(licence: str = "CC-BY-NC-4.0", model_id: str | None = None) -> dict[str, Any]:
    name = MUQ_WEIGHTS_NAME + (f": {model_id}" if model_id else "")
    on_hub = bool(model_id) and "/" in model_id and not model_id.startswith(("/", "."))
    url = f"https://huggingface.co/{model_id}" if on_hub else None
    return licence_record(name, licence, url=url or MUQ_WEIGHTS_URL)


def sketch_codebook_licences(metadata: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The MuQ weights' licence, read from a sketch codebook artifact's metadata (``muq_licence``)."""
    if not metadata:
        return []
    return [muq_weights_record(str(metadata.get("muq_licence") or UNKNOWN), metadata.get("muq_model_id"))]


def base_model_licences(init_source: str, description: str = "") -> list[dict[str, Any]]:
    """The weights training started from. The release's own terms are on its model card; we do not guess them."""
    if init_source == "scratch":
        return []
    if init_source == "release":
        return [
            licence_record(
                f"SongBloom base weights ({description or 'release'})",
                UNKNOWN,
                url="https://huggingface.co/CypressYang/SongBloom",
            )
        ]
    return [licence_record(f"initial weights ({init_source}: {description})", UNKNOWN)]


def data_licences(items: Iterable[tuple[str, str | None]], name: str = "training data") -> list[dict[str, Any]]:
    """Aggregate ``(item id, licence)`` pairs into one record per licence, counting distinct items."""
    by_licence: dict[str, set[str]] = {}
    for idx, licence in items:
        by_licence.setdefault(canonical_licence(licence), set()).add(str(idx))
    return [licence_record(name, lic, items=len(ids)) for lic, ids in sorted(by_licence.items())]


def _as_records(groups: Iterable[Any]) -> Iterable[dict[str, Any]]:
    for g in groups:
        if g is None:
            continue
        if isinstance(g, Mapping):
            yield dict(g)
        else:
            yield from _as_records(g)


def merge_licences(*groups: Any) -> list[dict[str, Any]]:
    """One list of records from records or lists of them; same (name, licence) merge, item counts add up."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in _as_records(groups):
        missing = {"name", "licence"} - set(rec)
        if missing:
            raise ValueError(f"licence record {rec!r} lacks {sorted(missing)}")
        key = (str(rec["name"]), str(rec["licence"]))
        if key not in merged:
            merged[key] = {
                "name": key[0],
                "licence": key[1],
                "url": rec.get("url"),
                "commercial": bool(rec.get("commercial", False)),
            }
            if rec.get("items") is not None:
                merged[key]["items"] = int(rec["items"])
            continue
        cur = merged[key]
        cur["commercial"] = cur["commercial"] and bool(rec.get("commercial", False))
        cur["url"] = cur["url"] or rec.get("url")
        if rec.get("items") is not None:
            cur["items"] = int(cur.get("items", 0)) + int(rec["items"])
    return sorted(merged.values(), key=lambda r: (r["name"], r["licence"]))


def non_commercial(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Records that do not allow commercial use (or whose terms are unknown)."""
    return [dict(r) for r in records if not r.get("commercial", False)]


def warn_if_non_commercial(records: Iterable[Mapping[str, Any]], what: str) -> list[dict[str, Any]]:
    """Log one warning naming every input that keeps ``what`` from commercial use; returns those records."""
    bad = non_commercial(records)
    if bad:
        lines = []
        for r in bad:
            why = "terms unknown" if r.get("licence") == UNKNOWN else "non-commercial"
            count = f", {r['items']} item(s)" if r.get("items") is not None else ""
            lines.append(f"  - {r['name']}: {r['licence']} ({why}{count})")
        logger.warning(
            "%s is NOT cleared for commercial use; it inherits these licences:\n%s",
            what,
            "\n".join(lines),
        )
    return bad
