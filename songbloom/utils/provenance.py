"""What produced a file: the songbloom version, the versions of the packages it ran on, a checkpoint's fingerprint.

Run dirs record :func:`environment_record` (``versions.json``); ``infer.py`` writes a sidecar per song with the
checkpoint's :func:`path_fingerprint`.
"""

from __future__ import annotations

import hashlib
import platform
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "torch", "torchaudio", "lightning", "hydra-core", "omegaconf", "peft", "wandb", "numpy", "safetensors",
    "soundfile",
)  # fmt: skip
FINGERPRINT_CHUNK = 1 << 20  # bytes hashed at each end of a file


def songbloom_version() -> str:
    """The installed distribution's version, else the package's ``__version__``."""
    try:
        return metadata.version("songbloom")
    except metadata.PackageNotFoundError:
        from songbloom import __version__

        return __version__


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """``{distribution: version}``; None for a package that is not installed."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def environment_record() -> dict[str, Any]:
    """The songbloom version, Python, the platform and :func:`package_versions`."""
    return {
        "songbloom": songbloom_version(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
    }


def _file_digest(path: Path, label: str, h: Any) -> None:
    size = path.stat().st_size
    h.update(f"{label}:{size}:".encode())
    with open(path, "rb") as f:
        h.update(f.read(FINGERPRINT_CHUNK))
        if size > 2 * FINGERPRINT_CHUNK:
            f.seek(size - FINGERPRINT_CHUNK)
        h.update(f.read(FINGERPRINT_CHUNK))


def path_fingerprint(path: str | Path) -> str:
    """A quick fingerprint of a checkpoint file or folder: sha256 over each file's name, size, first and last MiB.

    Cheap on multi-GB files (it reads at most 2 MiB per file) and changes when a file is replaced, retrained or
    truncated; it is not a full content hash (two files equal at both ends and in size would share it).
    """
    p = Path(path)
    h = hashlib.sha256()
    if p.is_dir():
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            _file_digest(f, f.relative_to(p).as_posix(), h)
    else:
        _file_digest(p, p.name, h)
    return h.hexdigest()[:16]


def update_with_sampled_tensors(digest: Any, state_dict: Mapping[str, Any], sample: int = 64) -> None:
    """Feed ``digest`` every tensor's name, shape and dtype plus its first and last ``sample`` values (as float64).

    A cheap identity of a model's weights (hashing billions of parameters would take seconds): it tells apart
    different checkpoints, random seeds and dtypes, though not two weight sets equal at both ends of every tensor.
    """
    import torch

    for name, tensor in sorted(state_dict.items()):
        flat = tensor.detach().reshape(-1)
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        values = torch.cat([flat[:sample], flat[-sample:]]) if flat.numel() > 2 * sample else flat
        digest.update(values.to("cpu", torch.float64).numpy().tobytes())
