"""A weights file's fingerprint, taken and checked in well under a second whatever the file's size.

What it covers: the size, the format header (a safetensors JSON header; a torch zip's member names, sizes and
CRCs), the tensor names and the first and last MiB. A different base model changes the header and the key list,
or at least the bytes; the fingerprint never reads the tensors in between, so two files that differ only there
compare equal (the zip CRCs of a torch file still cover them).
"""

from __future__ import annotations

import hashlib
import json
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from songbloom.checkpoints.safe_load import torch_load_safely

MIB = 2**20
FIELDS = {"size": "size", "header": "header", "keys": "key list", "first_mib": "first MiB", "last_mib": "last MiB"}
"""Fingerprint field -> the words a message uses for it."""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _safetensors_header(path: Path, size: int) -> tuple[bytes, list[str]] | None:
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return None
        (n,) = struct.unpack("<Q", head)
        if n > min(size - 8, 100 * MIB):
            return None
        raw = f.read(n)
    try:
        header = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(header, dict):
        return None
    return raw, sorted(k for k in header if k != "__metadata__")


def _tensor_names(obj: Any, prefix: str = "") -> list[str]:
    if isinstance(obj, Tensor):
        return [prefix.rstrip(".")]
    if isinstance(obj, Mapping):
        return [n for k, v in obj.items() for n in _tensor_names(v, f"{prefix}{k}.")]
    return []


def _zip_header(path: Path) -> tuple[bytes, list[str]] | None:
    """A torch zip: its directory (names, sizes, CRCs) and the tensor names of its pickle (memory-mapped)."""
    try:
        with zipfile.ZipFile(path) as zf:
            directory = "\n".join(f"{i.filename} {i.file_size} {i.CRC:08x}" for i in zf.infolist()).encode()
    except (OSError, zipfile.BadZipFile):
        return None
    try:
        names = sorted(_tensor_names(torch_load_safely(path)))
    except (OSError, ValueError, RuntimeError):
        names = []
    return directory, names


def _header_and_keys(path: Path, size: int) -> tuple[bytes, list[str]] | None:
    if path.suffix == ".safetensors":
        return _safetensors_header(path, size)
    if zipfile.is_zipfile(path):
        return _zip_header(path)
    return None


def file_fingerprint(path: str | Path) -> dict[str, Any]:
    """``{size, header, keys, key_count, first_mib, last_mib}`` of a weights file (hashes as hex strings;
    ``header`` and ``keys`` are None for files that are neither safetensors nor a torch zip)."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        first = f.read(MIB)
        f.seek(max(0, size - MIB))
        last = f.read(MIB)
    found = _header_and_keys(path, size)
    header, keys = found if found is not None else (None, None)
    return {
        "size": size,
        "header": _sha(header) if header is not None else None,
        "keys": _sha("\n".join(keys).encode()) if keys is not None else None,
        "key_count": len(keys) if keys is not None else None,
        "first_mib": _sha(first),
        "last_mib": _sha(last),
    }


def fingerprint_differences(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """What differs between two fingerprints, in words ("size", "key list", ...); empty when they match."""
    return [words for field, words in FIELDS.items() if recorded.get(field) != current.get(field)]
