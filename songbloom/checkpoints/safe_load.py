"""Reading files from outside: ``torch.load(weights_only=True)`` only, memory-mapped when possible.

Every checkpoint, VAE or fork file we did not write ourselves goes through :func:`torch_load_safely`, so an
unsafe pickle is refused with one clear message whichever entry point read it. The layers above read tensor files
only through this package (``tests/test_tensor_file_readers.py``): pickles here, safetensors with
:func:`load_safetensors`, :func:`safetensors_metadata` and :func:`safetensors_shape`.
"""

from __future__ import annotations

import logging
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from songbloom.checkpoints.messages import DAMAGED_FILE

logger = logging.getLogger(__name__)

_PICKLE_PROTOCOL_2 = b"\x80"  # the first byte of a torch file from before the zip format (torch < 1.6)
_CHUNK = 8 * 2**20


class DamagedFileError(ValueError):
    """A file that cannot be a complete checkpoint: cut short, overwritten, or not a checkpoint at all."""

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(DAMAGED_FILE.format(path=path, reason=reason))


def _zip_problem(zf: zipfile.ZipFile, size: int) -> str | None:
    names = zf.namelist()
    if sum(n == "data.pkl" or n.endswith("/data.pkl") for n in names) != 1:
        return "a zip file, but not a torch checkpoint (no data.pkl)"
    for info in zf.infolist():
        if info.header_offset + info.compress_size > size:
            return f"member {info.filename} runs past the end of the file"
    return None


def _crc_problem(zf: zipfile.ZipFile) -> str | None:
    for info in zf.infolist():
        try:
            with zf.open(info) as member:  # reading a member to its end verifies its CRC-32
                while member.read(_CHUNK):
                    pass
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            return f"member {info.filename}: {e}"
    return None


def check_checkpoint_file(path: str | Path, *, checksums: bool = False) -> None:
    """The integrity check that runs before a torch checkpoint is used; raises :class:`DamagedFileError`.

    Cheap by default (reads the zip directory only): a file cut short, random bytes or a zip without a torch
    pickle fail. ``checksums=True`` also reads every member and verifies its CRC-32 (overwritten bytes inside
    the file; about a second per GB from the page cache), which resume does for the checkpoint it picks.
    Torch files from before the zip format (torch < 1.6) have no directory to check and pass to the loader.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    size = path.stat().st_size
    if size == 0:
        raise DamagedFileError(path, "the file is empty")
    try:
        with zipfile.ZipFile(path) as zf:
            problem = _zip_problem(zf, size) or (_crc_problem(zf) if checksums else None)
    except zipfile.BadZipFile as e:
        with open(path, "rb") as f:
            if f.read(1) == _PICKLE_PROTOCOL_2:
                return  # a legacy (pre-zip) torch file: torch.load is its only check
        raise DamagedFileError(path, f"not a complete zip archive: {e}") from None
    if problem:
        raise DamagedFileError(path, problem)


def torch_load_safely(path: Path, *, allowed_globals: list | None = None, what: str = "tensors and plain containers",
                      hint: str | None = None) -> object:
    """``torch.load(weights_only=True)``, memory-mapped when the file allows, with a clear refusal message.

    :func:`check_checkpoint_file` runs first: a damaged file raises :class:`DamagedFileError` naming its path.
    ``allowed_globals`` extends the unpickler's allow-list (e.g. the OmegaConf classes the public fork stores);
    ``what`` names what the file may hold and ``hint`` what to do when it holds more.
    """
    import contextlib

    check_checkpoint_file(path)
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

    return load_file(str(path), device=device)


def safetensors_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a safetensors header, without reading the tensors."""
    from safetensors import safe_open

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
