"""The shard index (``index.json``): splits, shards, skipped items and licences, rebuilt from what is on disk."""

from __future__ import annotations

import datetime as _dt
import json
from collections import Counter
from pathlib import Path
from typing import Any

from songbloom.data.preprocess.lock import folder_guard
from songbloom.data.preprocess.provenance import PROVENANCE_NAME
from songbloom.data.shards import INDEX_NAME, atomic_write_json, completed_shards
from songbloom.licences import data_licences, merge_licences

INDEX_FORMAT = "songbloom-shards/1"


def _splits(out_dir: Path) -> dict[str, dict[str, Any]]:
    splits: dict[str, dict[str, Any]] = {}
    for side in completed_shards(out_dir):
        split = side["shard"].split("-", 1)[0]
        d = splits.setdefault(split, {"shards": [], "num_samples": 0, "duration_s": 0.0, "frames": 0, "songs": set()})
        d["shards"].append(
            {"name": side["shard"], "count": side["count"], "duration_s": side["duration_s"], "frames": side["frames"]}
        )
        d["num_samples"] += side["count"]
        d["duration_s"] += side["duration_s"]
        d["frames"] += side["frames"]
        d["songs"].update(i["song_id"] for i in side["items"])
    for d in splits.values():
        d["num_songs"] = len(d.pop("songs"))
        d["duration_s"] = round(d["duration_s"], 3)
    return splits


def write_index(out_dir: str | Path) -> dict[str, Any]:
    """(Re)build ``index.json`` from the complete shards, the provenance and the task reports."""
    out_dir = Path(out_dir)
    with folder_guard(out_dir):  # tasks finishing together: the last writer sees every task's shards
        return _write_index(out_dir)


def _write_index(out_dir: Path) -> dict[str, Any]:
    prov_path = out_dir / PROVENANCE_NAME
    prov = json.loads(prov_path.read_text(encoding="utf-8")) if prov_path.exists() else None
    splits = _splits(out_dir)
    skipped: list[dict] = []
    for rp in sorted((out_dir / "reports").glob("task-*.json")):
        skipped += json.loads(rp.read_text(encoding="utf-8")).get("skipped", [])
    item_licences = [(i["idx"], i.get("licence")) for side in completed_shards(out_dir) for i in side["items"]]
    index = {
        "format": INDEX_FORMAT,
        "licences": merge_licences(data_licences(item_licences), (prov or {}).get("licences")),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "provenance": prov,
        "splits": splits,
        "prompt_sources": dict(
            Counter(i.get("prompt", "unrecorded") for side in completed_shards(out_dir) for i in side["items"])
        ),
        "skipped": {"count": len(skipped), "by_kind": dict(Counter(s["kind"] for s in skipped)), "items": skipped},
    }
    atomic_write_json(out_dir / INDEX_NAME, index)
    return index
