"""The base model a recovery starts from: loaded from a path or a release name, and named the way training names it.

A recovered codebook is tied to the sketch tables of one base model (their sha256, see
:mod:`songbloom.building.sketch_tables`), so the base is identified by that hash, by the name a training run gives
its init weights (``init.release_name`` for a release, the path for an export) and by a fingerprint of its weights
file when there is one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from songbloom.building.sketch_tables import sketch_tables_sha256
from songbloom.checkpoints.bundle import SongBloom

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
RELEASE_FORMATS = ("release_dir", "release_pt")  # checkpoint formats named after their weights file's stem


class BaseModelError(ValueError):
    """``--base`` names nothing this version can load."""


@dataclass
class BaseModel:
    """A loaded base model and what identifies it in a recovered codebook's ``recovery.base`` block."""

    bundle: SongBloom
    name: str
    sketch_tables_sha256: str
    file_fingerprint: dict[str, Any] | None

    @property
    def num_pitch(self) -> int:
        return int(self.bundle.config.model.num_pitch)

    def corpus_facts(self) -> dict[str, Any]:
        """Facts merged into the corpus's base description (so the fit stage needs no model)."""
        return {
            "name": self.name,
            "sketch_tables_sha256": self.sketch_tables_sha256,
            "checkpoint_fingerprint": self.file_fingerprint,
        }


def base_name(spec: str, bundle: SongBloom) -> str:
    """The name a training run gives these weights: the release name (the weights file's stem) for a release
    directory or ``.pt``, the path as given for anything else (an export)."""
    from songbloom.checkpoints.registry import detect_checkpoint_format

    path = Path(spec)
    if not path.exists():
        return spec  # a release name
    weights = bundle.config.pretrained_path
    if detect_checkpoint_format(path).name in RELEASE_FORMATS and weights:
        return Path(weights).stem
    return spec


def _file_fingerprint(bundle: SongBloom) -> dict[str, Any] | None:
    from songbloom.checkpoints.fingerprint import file_fingerprint

    path = bundle.config.pretrained_path
    if path and Path(path).is_file():
        return file_fingerprint(path)
    return None


def load_base(
    spec: str | Path,
    *,
    local_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> BaseModel:
    """Load ``spec``: a release directory or ``.pt``, one of our exports (any checkpoint layout
    :func:`songbloom.checkpoints.registry.load_checkpoint` reads), or a release name whose files are in
    ``local_dir`` or the Hub cache (never downloaded here).

    Raises:
        BaseModelError: ``spec`` is neither an existing path nor a release whose files are on disk.
    """
    from songbloom.checkpoints.bundle import load_release
    from songbloom.checkpoints.registry import load_checkpoint
    from songbloom.checkpoints.release_files import MODEL_REPOS

    spec = str(spec)
    if Path(spec).exists():
        bundle = load_checkpoint(spec, device=device, dtype=dtype)
    elif spec in MODEL_REPOS:
        try:
            bundle = load_release(spec, local_dir, device=device, dtype=dtype, local_only=True)
        except FileNotFoundError as e:
            raise BaseModelError(
                f"--base {spec}: the release files are not on disk ({e}); download them first, or pass the release "
                "directory"
            ) from e
    else:
        raise BaseModelError(
            f"--base {spec}: no such file or directory, and not a release name ({', '.join(sorted(MODEL_REPOS))}); "
            "give a release directory or .pt, an export directory, or a release name"
        )
    bundle.model.eval()
    base = BaseModel(bundle, base_name(spec, bundle), sketch_tables_sha256(bundle.model), _file_fingerprint(bundle))
    logger.info("base model %s: num_pitch %d, sketch tables sha256 %s", base.name, base.num_pitch,
                base.sketch_tables_sha256[:16])
    return base
