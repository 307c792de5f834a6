"""WebDataset shards with crash-safe completion, and the sample encoding (npy / json / flac, no pickle).

A shard is written to ``<name>.tar.partial`` and becomes visible only when it is complete: it is renamed to
``<name>.tar`` and then a sidecar ``<name>.tar.json`` lists its sample keys. A shard counts as done only when
both exist, so a killed run leaves nothing half-visible, and a rerun skips exactly the keys already in done
shards: every item ends up exactly once.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import webdataset as wds

from songbloom.utils.atomic import atomic_write_json

logger = logging.getLogger(__name__)

SIDE_SUFFIX = ".json"
PARTIAL_SUFFIX = ".partial"
INDEX_NAME = "index.json"
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def sample_key(idx: str, segment: int) -> str:
    """A WebDataset key for segment ``segment`` of song ``idx``: no dots (webdataset splits on them), unique."""
    safe = _KEY_UNSAFE.sub("_", idx)[:80].strip("_") or "item"
    digest = hashlib.sha1(idx.encode("utf-8")).hexdigest()[:8]
    return f"{safe}-{digest}-s{segment:03d}"


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def encode_sample(key: str, arrays: dict[str, np.ndarray], meta: dict[str, Any], blobs: dict[str, bytes]) -> dict:
    """Build the dict a tar writer takes: ``<field>.npy`` arrays, ``meta.json``, and raw ``<field>.flac`` blobs."""
    out: dict[str, Any] = {"__key__": key}
    for name, arr in arrays.items():
        if arr.dtype == object:
            raise TypeError(f"{key}: array {name!r} has dtype object; shards never hold pickles")
        out[f"{name}.npy"] = npy_bytes(arr)
    out["meta.json"] = json.dumps(meta, ensure_ascii=False).encode("utf-8")
    out.update(blobs)
    return out


def decode_sample(raw: dict[str, Any]) -> dict[str, Any]:
    """Decode a raw WebDataset sample: ``.npy`` with pickles refused, ``.json`` parsed, other bytes kept."""
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if name.startswith("__"):
            out[name] = value
        elif name.endswith(".npy"):
            out[name[:-4]] = np.load(io.BytesIO(value), allow_pickle=False)
        elif name.endswith(".json"):
            out[name[:-5]] = json.loads(value)
        else:
            out[name] = value
    return out


class ResumableShardWriter:
    """``webdataset.ShardWriter`` that publishes a shard only when it is complete (see module docstring).

    Args:
        out_dir: folder of the shard set.
        prefix: name prefix owned by this writer alone (one per split, task and worker).
        maxcount / maxsize: rotate after this many samples / bytes.
    """

    def __init__(self, out_dir: str | Path, prefix: str, maxcount: int = 256, maxsize: float = 1e9):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.maxcount = maxcount
        self.maxsize = maxsize
        self._writer: wds.ShardWriter | None = None
        self._stream = None
        self._pending: list[dict[str, Any]] = []
        self.written_shards: list[str] = []
        remove_incomplete(self.out_dir, prefix)

    def _next_shard_number(self) -> int:
        numbers = [
            int(m.group(1))
            for p in self.out_dir.glob(f"{self.prefix}-*.tar*")
            if (m := re.search(r"-(\d{6})\.tar", p.name))
        ]
        return max(numbers, default=-1) + 1

    def _open(self, fname: str):
        self._stream = open(fname + PARTIAL_SUFFIX, "wb")
        return self._stream

    def _publish(self, fname: str) -> None:
        if self._stream is not None:
            self._stream.flush()
            os.fsync(self._stream.fileno())
            self._stream.close()
            self._stream = None
        partial = fname + PARTIAL_SUFFIX
        if not self._pending:
            if os.path.exists(partial):
                os.remove(partial)
            return
        os.replace(partial, fname)
        items = self._pending
        self._pending = []
        atomic_write_json(
            fname + SIDE_SUFFIX,
            {
                "shard": Path(fname).name,
                "count": len(items),
                "duration_s": round(sum(i["duration_s"] for i in items), 4),
                "frames": sum(i["frames"] for i in items),
                "items": items,
            },
        )
        self.written_shards.append(Path(fname).name)

    def write(self, sample: dict[str, Any], info: dict[str, Any]) -> None:
        """Write one encoded sample; ``info`` (key, idx, song_id, duration_s, frames) goes to the sidecar."""
        if self._writer is None:
            self._writer = wds.ShardWriter(
                str(self.out_dir / f"{self.prefix}-%06d.tar"),
                maxcount=self.maxcount,
                maxsize=self.maxsize,
                post=self._publish,
                start_shard=self._next_shard_number(),
                verbose=0,
                opener=self._open,
            )
        self._writer.write(sample)  # may rotate (publishing the previous shard) before writing
        self._pending.append(info)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> ResumableShardWriter:
        return self

    def __exit__(self, *exc) -> None:
        # On an exception the current shard is still complete up to its last sample: publish it.
        self.close()


def remove_incomplete(out_dir: Path, prefix: str) -> list[str]:
    """Delete this prefix's leftovers of a killed run: partial files and tars without a sidecar."""
    removed = []
    for p in out_dir.glob(f"{prefix}-*"):
        done_tar = p.name.endswith(".tar") and not p.with_name(p.name + SIDE_SUFFIX).exists()
        if p.name.endswith(PARTIAL_SUFFIX) or done_tar or ".tmp" in p.name:
            p.unlink(missing_ok=True)
            removed.append(p.name)
    if removed:
        logger.info("removed %d incomplete files of an interrupted run: %s", len(removed), removed[:5])
    return removed


def completed_shards(out_dir: str | Path) -> list[dict[str, Any]]:
    """Sidecars of all complete shards (tar and sidecar both present), sorted by shard name."""
    out_dir = Path(out_dir)
    result = []
    for side in sorted(out_dir.glob(f"*.tar{SIDE_SUFFIX}")):
        tar = side.with_name(side.name[: -len(SIDE_SUFFIX)])
        if not tar.exists():
            continue
        try:
            result.append(json.loads(side.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as e:
            logger.warning("%s: unreadable shard sidecar (%s); its shard is ignored and will be redone", side, e)
    return result


def load_index(path_or_dir: str | Path) -> dict[str, Any]:
    p = Path(path_or_dir)
    if p.is_dir():
        p = p / INDEX_NAME
    if not p.exists():
        raise FileNotFoundError(f"{p}: no shard index; run scripts/preprocess.py on this folder first")
    return json.loads(p.read_text(encoding="utf-8"))


def iter_tar_samples(urls: Iterable[str], handler=wds.warn_and_continue) -> Iterator[dict[str, Any]]:
    """Raw samples of the given tar files, in order; a damaged tar is reported and its readable part kept."""
    source = ({"url": u} for u in urls)
    yield from wds.tarfile_to_samples(handler=handler)(source)


SAMPLE_MEMBERS = frozenset(
    {
        "latent_mean.npy",
        "latent_scale.npy",
        "sketch.npy",
        "lyric_ids.npy",
        "prompt_mean.npy",
        "prompt_scale.npy",
        "meta.json",
        "prompt.flac",
        "audio.flac",
    }
)
REQUIRED_MEMBERS = ("latent_mean.npy", "latent_scale.npy", "sketch.npy", "lyric_ids.npy", "meta.json")


def _read_back(url: str, listed: set[str]) -> tuple[int, list[str], list[dict[str, Any]]]:
    """Decode every listed sample of one tar: (samples read, read errors, problems with single samples).

    Samples the sidecar does not list are left to the member check (``unexpected_member``)."""
    errors: list[str] = []
    problems: list[dict[str, Any]] = []

    def collect(exn: Exception) -> bool:
        errors.append(f"{type(exn).__name__}: {exn}")
        return True

    n = 0
    for raw in iter_tar_samples([url], handler=collect):
        if raw.get("__key__") not in listed:
            continue
        missing = [r for r in REQUIRED_MEMBERS if r not in raw]
        if missing:
            problems.append({"kind": "damaged", "file": url, "key": raw.get("__key__"), "reason": f"lacks {missing}"})
            continue
        try:
            decode_sample(raw)
        except Exception as e:
            problems.append({"kind": "damaged", "file": url, "key": raw.get("__key__"), "reason": f"undecodable: {e}"})
            continue
        n += 1
    return n, errors, problems


def _tar_members(url: str) -> tuple[dict[str, list[str]], list[dict[str, Any]]]:
    """The sample keys of one tar with their member names, and problems with members that belong to no sample."""
    keys: dict[str, list[str]] = {}
    problems: list[dict[str, Any]] = []
    try:
        with tarfile.open(url) as tar:
            for m in tar:
                key, _, suffix = Path(m.name).name.partition(".")
                if not m.isfile() or "/" in m.name or suffix not in SAMPLE_MEMBERS:
                    what = "not a regular file" if not m.isfile() else "not a sample field"
                    problems.append({"kind": "unexpected_member", "file": url, "member": m.name, "reason": what})
                    continue
                names = keys.setdefault(key, [])
                if suffix in names:
                    problems.append(
                        {"kind": "duplicate", "file": url, "key": key, "reason": f"{m.name} twice in one shard"}
                    )
                names.append(suffix)
    except (tarfile.TarError, OSError, EOFError):
        pass  # damage is reported by the decoding pass
    return keys, problems


def _check_shard(out_dir: Path, side: dict[str, Any], seen: dict[str, list[str]]) -> list[dict[str, Any]]:
    """One complete shard: readable, every sidecar key in the tar, no member the sidecar does not list."""
    url = str(out_dir / side["shard"])
    listed = [item["key"] for item in side["items"]]
    n, errors, problems = _read_back(url, set(listed))
    keys, member_problems = _tar_members(url)
    problems += member_problems
    absent = [k for k in listed if k not in keys]
    if errors:
        reason = f"read {n} of {side['count']} samples; " + "; ".join(errors[:3])
        problems.append({"kind": "damaged", "file": url, "reason": reason, "missing_keys": absent})
    else:
        for k in absent:
            problems.append(
                {"kind": "missing_key", "file": url, "key": k, "reason": "listed in the sidecar, not in the tar"}
            )
        for k in sorted(set(keys) - set(listed)):
            problems.append(
                {"kind": "unexpected_member", "file": url, "key": k, "reason": f"sample not in the sidecar: {keys[k]}"}
            )
    for k in set(keys) | set(listed):
        seen.setdefault(k, []).append(side["shard"])
    return problems


def _leftovers(out_dir: Path) -> list[dict[str, Any]]:
    """Files of unfinished shards (a running or killed writer); the next run of their task deletes them."""
    problems = []
    for p in sorted(out_dir.iterdir()):
        name = p.name
        if name.endswith(PARTIAL_SUFFIX) or (name.endswith(".tar") and not p.with_name(name + SIDE_SUFFIX).exists()):
            problems.append({"kind": "leftover", "file": str(p), "reason": "unfinished shard (not read by training)"})
        elif name.endswith(".tar" + SIDE_SUFFIX) and not p.with_name(name[: -len(SIDE_SUFFIX)]).exists():
            problems.append({"kind": "leftover", "file": str(p), "reason": "sidecar without its tar"})
    return problems


def verify_shards(out_dir: str | Path) -> list[dict[str, Any]]:
    """Read every complete shard back and check it against its sidecar; return one problem dict per finding.

    Each problem has ``kind``: ``damaged`` (unreadable or undecodable data; a damaged shard is one problem,
    with the sidecar keys it lacks in ``missing_keys``), ``missing_key`` (a sidecar key the tar lacks),
    ``unexpected_member`` (a tar member or sample the sidecar does not list), ``duplicate`` (a key in more than
    one shard, or twice in one), ``leftover`` (files of an unfinished shard), ``no_shards``; and ``file`` and
    ``reason``.
    """
    out_dir = Path(out_dir)
    sides = completed_shards(out_dir)
    if not sides:
        what = "holds no complete shard" if out_dir.is_dir() else "does not exist"
        return [{"kind": "no_shards", "file": str(out_dir), "reason": f"{what}; run the preprocessing into it first"}]
    problems: list[dict[str, Any]] = []
    seen: dict[str, list[str]] = {}
    for side in sides:
        problems += _check_shard(out_dir, side, seen)
    for key, shards in sorted(seen.items()):
        if len(shards) > 1:
            problems.append(
                {"kind": "duplicate", "file": str(out_dir / shards[-1]), "key": key, "reason": f"also in {shards[:-1]}"}
            )
    return problems + _leftovers(out_dir)
