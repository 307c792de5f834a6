"""Which base model a run was trained on: its resolved path and fingerprint, recorded at training start.

An adapter-only checkpoint holds only the trained tensors; the frozen base comes from the run's ``init`` block,
whose ``release_dir`` / ``export_path`` may be relative to the folder the run was started in. The record
(:data:`~songbloom.checkpoints.keys.BASE_RECORD_KEY` in the checkpoint) keeps the absolute path and a
:func:`~songbloom.checkpoints.fingerprint.file_fingerprint` of the base file, so the checkpoint loads from any
directory, and a base that moved or changed since training is named as such instead of loading wrong weights.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from songbloom.checkpoints.fingerprint import file_fingerprint, fingerprint_differences
from songbloom.checkpoints.release_files import resolve_release_files
from songbloom.config.run import InitConfig

logger = logging.getLogger(__name__)

BASE_FLAG = "--base-ckpt <release dir or .pt> (base= in the Python API)"


def _base_paths(init: InitConfig) -> tuple[str | None, Path] | None:
    """(the resolved ``release_dir`` / ``export_path`` or None, the weights file) of the run's base."""
    if init.source == "export" and init.export_path:
        path = Path(init.export_path).resolve()
        return str(path), path
    if init.source != "release":
        return None
    files = resolve_release_files(str(init.release_name), init.release_dir, local_only=True)
    where = str(Path(init.release_dir).resolve()) if init.release_dir else None
    return where, files.pt


def training_base_record(init: InitConfig) -> dict[str, Any] | None:
    """The record of the run's base (None for ``init.source=scratch`` or a base that cannot be found)."""
    try:
        found = _base_paths(init)
        if found is None:
            return None
        where, file = found
        return {"source": init.source, "init_path": where, "file": str(file), "fingerprint": file_fingerprint(file)}
    except (OSError, ValueError) as e:
        logger.warning("the base model's path and fingerprint are not recorded in the checkpoints (%s)", e)
        return None


def base_problem(record: dict[str, Any]) -> str | None:
    """Why the recorded base cannot be used as it is (moved or changed since training), or None."""
    file = Path(str(record.get("file")))
    if not file.is_file():
        return (
            f"the base model this checkpoint was trained on is no longer at {file} (moved or deleted since "
            f"training); pass it with {BASE_FLAG}"
        )
    differs = fingerprint_differences(record.get("fingerprint") or {}, file_fingerprint(file))
    if differs:
        return (
            f"the base model at {file} changed since training ({', '.join(differs)} differ from the fingerprint "
            f"recorded at training start): pass the base the run was trained on with {BASE_FLAG}"
        )
    return None


def recorded_init(init: InitConfig, record: dict[str, Any]) -> InitConfig:
    """``init`` with its relative ``release_dir`` / ``export_path`` replaced by the resolved path recorded."""
    where = record.get("init_path")
    if not where:
        return init
    field = "export_path" if init.source == "export" else "release_dir"
    return dataclasses.replace(init, **{field: str(where)})
