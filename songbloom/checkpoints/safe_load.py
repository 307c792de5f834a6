"""Reading files from outside: ``torch.load(weights_only=True)`` only, memory-mapped when possible.

Every checkpoint, VAE or fork file we did not write ourselves goes through :func:`torch_load_safely`, so an
unsafe pickle is refused with one clear message whichever entry point read it. The layers above read tensor files
only through this package (``tests/test_tensor_file_readers.py``): pickles here, safetensors with
:func:`load_safetensors`, :func:`safetensors_metadata` and :func:`safetensors_shape`.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from songbloom.checkpoints.messages import DAMAGED_FILE

logger = logging.getLogger(__name__)

_CHUNK = 8 * 2**20
UNSAFE_TORCH_ENV = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"


class DamagedFileError(ValueError):
    """A weights file that cannot be complete: cut short, overwritten, or not what its name says."""

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(DAMAGED_FILE.format(path=path, reason=reason))


class UnsafeEnvironmentError(ValueError):
    """The environment switches off weights-only loading, so files from outside could run code."""


def refuse_unsafe_torch_env() -> None:
    """Refuse while ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` is set: with it, ``torch.load`` calls in third-party code
    (MuQ's ``rvq_ckpt_path``) unpickle arbitrary objects, which can run code."""
    if os.environ.get(UNSAFE_TORCH_ENV, "0").lower() in ("1", "y", "yes", "true"):
        raise UnsafeEnvironmentError(
            f"{UNSAFE_TORCH_ENV} is set in the environment: it makes torch.load unpickle arbitrary Python objects "
            "(code) in libraries that do not pass weights_only, so we refuse to load files from outside; "
            f"unset it (`unset {UNSAFE_TORCH_ENV}`) and run again"
        )


def _safetensors_problem(path: Path, size: int) -> str | None:
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"{size} bytes: too short for a safetensors header"
        (n,) = struct.unpack("<Q", head)
        if n > min(size - 8, 100 * 2**20):
            return f"safetensors header length {n} does not fit a {size}-byte file"
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            return f"safetensors header is not valid JSON ({e})"
    if not isinstance(header, dict):
        return "safetensors header is not a JSON object"
    ends = [v.get("data_offsets", [0, 0])[1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)]
    expected = 8 + n + max(ends, default=0)
    if expected != size:
        return f"{size} bytes, but its safetensors header describes {expected} (truncated?)"
    return None


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> str | None:
    try:
        with zf.open(info) as member:  # reading a member to its end verifies its CRC-32
            while member.read(_CHUNK):
                pass
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        return f"member {info.filename}: {e}"
    return None


def _zip_problem(path: Path, size: int, checksums: bool) -> str | None:
    """A torch zip: one ``data.pkl`` (its CRC always checked: it is small), members inside the file, and with
    ``checksums`` every member's CRC."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            pickles = [i for i in infos if i.filename == "data.pkl" or i.filename.endswith("/data.pkl")]
            if len(pickles) != 1:
                return "a zip file, but not a torch checkpoint (no data.pkl)"
            for info in infos:
                if info.header_offset + info.compress_size > size:
                    return f"member {info.filename} runs past the end of the file"
            for info in infos if checksums else pickles:
                problem = _read_member(zf, info)
                if problem:
                    return problem
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        return f"not a complete zip archive: {e}"
    return None


def check_file_integrity(path: str | Path, *, checksums: bool = False) -> None:
    """The check that runs before any checkpoint, VAE or safetensors file is used; raises :class:`DamagedFileError`.

    Cheap by default (no tensor data is read): a safetensors header must match the file size; a torch zip must
    hold one ``data.pkl`` (CRC-checked) and members that fit inside the file. ``checksums=True`` also reads every
    zip member and verifies its CRC-32 (overwritten bytes; about a second per GB from the page cache), which resume
    does for the checkpoint it picks. Torch files from before the zip format (torch < 1.6) pass to ``torch.load``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    size = path.stat().st_size
    if size == 0:
        raise DamagedFileError(path, "the file is empty")
    with open(path, "rb") as f:
        head = f.read(4)
    if path.suffix == ".safetensors":
        problem = _safetensors_problem(path, size)
    elif head.startswith(b"PK"):
        problem = _zip_problem(path, size, checksums)
    elif len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        problem = None  # a legacy (torch < 1.6) pickle: torch checks its magic number itself
    else:
        problem = "not a complete zip archive, a legacy torch pickle or a safetensors file"
    if problem:
        raise DamagedFileError(path, problem)


def torch_load_safely(path: Path, *, allowed_globals: list | None = None, what: str = "tensors and plain containers",
                      hint: str | None = None) -> object:
    """``torch.load(weights_only=True)``, memory-mapped when the file allows, with a clear refusal message.

    :func:`check_file_integrity` runs first: a damaged file raises :class:`DamagedFileError` naming its path.
    ``allowed_globals`` extends the unpickler's allow-list (e.g. the OmegaConf classes the public fork stores);
    ``what`` names what the file may hold and ``hint`` what to do when it holds more.
    """
    import contextlib

    refuse_unsafe_torch_env()
    check_file_integrity(path)
    scope = torch.serialization.safe_globals(allowed_globals) if allowed_globals else contextlib.nullcontext()
    try:
        with scope:
            try:
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as e:
                # mmap needs the zip format of torch >= 1.6; older files load fully into memory instead.
                if "mmap" not in str(e):
                    raise
                logger.info("%s: not mmap-able (%s); loading it into memory", path, e)
                return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        last_line = str(e).strip().splitlines()[-1] if str(e).strip() else ""
        hint = hint or (
            "If you trust the file, re-save only its tensors (its 'state_dict' mapping) with torch.save or "
            "safetensors in the environment that wrote it, and load that copy."
        )
        raise ValueError(
            f"{path}: holds Python objects other than {what}, which we refuse to unpickle (weights_only=True). "
            f"{hint} ({last_line})"
        ) from e


def load_safetensors(path: str | Path, device: str = "cpu") -> dict[str, Tensor]:
    """Every tensor of a safetensors file (no pickle involved)."""
    from safetensors.torch import load_file

    check_file_integrity(path)
    return load_file(str(path), device=device)


def safetensors_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a safetensors header, without reading the tensors."""
    from safetensors import safe_open

    check_file_integrity(path)
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def safetensors_shape(path: str | Path, key: str) -> tuple[int, ...]:
    """The shape of one tensor of a safetensors file, without reading it."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return tuple(f.get_slice(key).get_shape())


def check_tensors(sd: Mapping[str, object], path: Path) -> dict[str, Tensor]:
    bad = [k for k, v in sd.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        shown = ", ".join(f"{k!r}: {type(sd[k]).__name__}" for k in bad[:10])
        raise ValueError(f"{path}: expected a state dict of tensors; {len(bad)} entries are not ({shown})")
    return dict(sd)  # type: ignore[arg-type]
