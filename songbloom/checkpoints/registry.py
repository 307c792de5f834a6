"""The registry of checkpoint formats: detect what a path holds, then load it as a :class:`SongBloom`.

Each format is a :class:`CheckpointFormat`: a cheap ``detect(path)`` and a ``load(path, options)`` that
returns a built :class:`~songbloom.checkpoints.bundle.SongBloom` (config, generator, VAE, vocabulary). The
model settings always come from the checkpoint itself or the config stored beside it, never from flags.
This module imports no format: the built-in ones are listed in :mod:`songbloom.checkpoints.formats`, and
more register themselves with :func:`register_checkpoint_format` (first match wins, in registration order,
unless a format name is forced).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from songbloom.checkpoints.bundle import SongBloom
from songbloom.checkpoints.safe_load import check_file_integrity

logger = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")


@dataclass(frozen=True)
class LoadOptions:
    device: torch.device
    dtype: torch.dtype = torch.float32
    config_path: Path | None = None  # an explicit model YAML for a bare weights file
    base_path: Path | None = None  # the base model under an adapter or an adapter-only training checkpoint
    lora_alpha: float | None = None  # the public fork's LoRA alpha: its checkpoints do not store it (default 32)


@dataclass(frozen=True)
class CheckpointFormat:
    """One checkpoint layout: ``detect`` must be cheap (no weight reads) and must not raise."""

    name: str
    description: str
    detect: Callable[[Path], bool]
    load: Callable[[Path, LoadOptions], SongBloom]


_FORMATS: dict[str, CheckpointFormat] = {}


def register_checkpoint_format(fmt: CheckpointFormat, *, replace: bool = False) -> None:
    """Add a format handler; detection tries handlers in registration order."""
    if fmt.name in _FORMATS and not replace:
        raise ValueError(f"checkpoint format {fmt.name!r} is already registered (pass replace=True)")
    _FORMATS[fmt.name] = fmt


def checkpoint_formats() -> list[CheckpointFormat]:
    return list(_FORMATS.values())


def detect_checkpoint_format(path: str | Path) -> CheckpointFormat:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"checkpoint {path} does not exist; check the path (a release dir or .pt, a training .ckpt, "
            "an export or adapter dir)"
        )
    for fmt in _FORMATS.values():
        if fmt.detect(path):
            return fmt
    if path.is_file():  # a damaged file is called damaged, not an unknown layout
        check_file_integrity(path)
    known = "\n".join(f"  - {f.name}: {f.description}" for f in _FORMATS.values())
    raise ValueError(f"{path}: not a checkpoint layout this version can load. Known layouts:\n{known}")


def load_checkpoint(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    format: str | None = None,
    config_path: str | Path | None = None,
    base_path: str | Path | None = None,
    lora_alpha: float | None = None,
) -> SongBloom:
    """Build the model stored at ``path`` (format detected unless ``format`` names one).

    ``base_path``: the base model (any format here) for an adapter directory or an adapter-only checkpoint.
    """
    path = Path(path)
    if format is not None:
        if format not in _FORMATS:
            raise ValueError(f"unknown checkpoint format {format!r}; registered: {sorted(_FORMATS)}")
        fmt = _FORMATS[format]
    else:
        fmt = detect_checkpoint_format(path)
    if path.is_file():
        check_file_integrity(path)  # before any of it is used
    logger.info("loading %s as %s", path, fmt.name)
    opts = LoadOptions(
        torch.device(device),
        dtype,
        Path(config_path) if config_path is not None else None,
        Path(base_path) if base_path is not None else None,
        lora_alpha,
    )
    return fmt.load(path, opts)
