"""``--verify``: the shards read back against their sidecars, and every good manifest item present exactly once."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from songbloom.data.manifest import read_manifest
from songbloom.data.shards import completed_shards, verify_shards


def _skipped_ids(out_dir: Path) -> set[str]:
    """Songs a task report lists as skipped (in whole or in part): they are not expected complete."""
    ids: set[str] = set()
    for rp in sorted((out_dir / "reports").glob("task-*.json")):
        for item in json.loads(rp.read_text(encoding="utf-8")).get("skipped", []):
            if item.get("idx") and item.get("kind") != "duplicate_idx":  # the first copy of the idx is still good
                ids.add(item["idx"])
    return ids


def check_manifest_items(out_dir: str | Path, manifests: Sequence[str | Path]) -> list[dict[str, Any]]:
    """A problem for every song of ``manifests`` that was not reported skipped but lacks samples in the shards."""
    out_dir = Path(out_dir)
    segments: dict[str, Counter] = {}
    expected: dict[str, int] = {}
    for side in completed_shards(out_dir):
        for item in side["items"]:
            segments.setdefault(item["idx"], Counter())[int(item["segment"])] += 1
            expected[item["idx"]] = int(item["num_segments"])
    skipped = _skipped_ids(out_dir)
    problems: list[dict[str, Any]] = []
    checked: set[str] = set()
    for manifest in manifests:
        records, _ = read_manifest(manifest)  # bad lines are not good items (the task reports list them)
        for rec in records:
            if rec.idx in skipped or rec.idx in checked:
                continue
            checked.add(rec.idx)
            where = {"file": str(manifest), "line": rec.source.rpartition(":")[2], "idx": rec.idx}
            if rec.idx not in segments:
                reason = "a good item with no sample in the shards and not reported skipped; rerun its task"
                problems.append({"kind": "missing_item", **where, "reason": reason})
                continue
            absent = [i for i in range(expected[rec.idx]) if segments[rec.idx][i] == 0]
            if absent:
                reason = f"segments {absent} of {expected[rec.idx]} are in no shard; rerun its task"
                problems.append({"kind": "missing_item", **where, "reason": reason})
    return problems


def verify_output(out_dir: str | Path, manifests: Sequence[str | Path] = ()) -> list[dict[str, Any]]:
    """:func:`~songbloom.data.shards.verify_shards`, plus :func:`check_manifest_items` when manifests are given."""
    problems = verify_shards(out_dir)
    if manifests:
        problems += check_manifest_items(out_dir, manifests)
    return problems
