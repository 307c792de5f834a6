"""What a training run inherits: the licences of its data, of the MuQ weights behind its codebook and of its
initial weights, gathered from the shard index and the codebook's metadata (see :mod:`songbloom.licences`)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from songbloom.licences import (
    UNKNOWN,
    base_model_licences,
    licence_record,
    merge_licences,
    muq_weights_record,
    sketch_codebook_licences,
)
from songbloom.sketch.artifact import read_codebook_metadata

logger = logging.getLogger(__name__)


def training_licences(
    *,
    data_kind: str = "shards",
    shards_dir: str | Path | None = None,
    init_source: str = "scratch",
    init_description: str = "",
    codebook_path: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Everything a training run inherits: the shard index's licences, the codebook's MuQ weights, the init."""
    groups: list[Any] = []
    if data_kind == "synthetic":
        groups.append(licence_record("synthetic training data (generated in memory)", "CC0-1.0"))
    elif shards_dir is not None:
        index_path = Path(shards_dir) / "index.json"
        index = json.loads(index_path.read_text(encoding="utf-8")) if index_path.is_file() else {}
        if index.get("licences"):
            groups.append(index["licences"])
        else:  # shards written before licences were recorded
            groups.append(licence_record(f"training data ({shards_dir}; index records no licences)", UNKNOWN))
    if codebook_path:
        try:
            groups.append(sketch_codebook_licences(read_codebook_metadata(codebook_path)))
        except (OSError, ValueError, RuntimeError) as e:
            # Our codebooks are always built on MuQ features, so its weights' licence applies regardless.
            logger.warning(
                "%s: codebook metadata unreadable (%s); recording the MuQ weights as CC-BY-NC-4.0", codebook_path, e
            )
            groups.append(muq_weights_record())
    groups.append(base_model_licences(init_source, init_description))
    return merge_licences(*groups)
