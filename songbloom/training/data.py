"""Builds the datamodule named by ``conf/data/*.yaml``: the in-memory synthetic set, or preprocessed shards.

This is the single adapter to the data pipeline (``songbloom.data``): its config names and module live here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L

from songbloom.config import SongBloomConfig
from songbloom.training.synthetic_data import SyntheticSongDataModule, SyntheticSpec

logger = logging.getLogger(__name__)

MANIFEST_HELP = (
    "a song manifest (JSONL: audio_path, lyrics, language, optional sections with timestamps) is needed. "
    "Build one with a converter (scripts/make_synthetic_dataset.py for a synthetic set; see docs/data.md for "
    "the corpus converters), then encode it into shards with "
    "`python scripts/preprocess.py <manifest.jsonl> --out <shards_dir> --vae-config ... --vae-ckpt ... "
    "--codebook <codebook>` and pass data.manifest=<manifest.jsonl> data.shards_dir=<shards_dir>"
)


class DataConfigError(ValueError):
    """The data section of the config cannot produce a datamodule; the message says what to run."""


def build_datamodule(data_cfg: Mapping[str, Any], sb_cfg: SongBloomConfig, *, seed: int) -> L.LightningDataModule:
    kind = data_cfg.get("kind", "synthetic")
    m = sb_cfg.model
    if kind == "synthetic":
        spec_keys = SyntheticSpec.__dataclass_fields__
        spec = SyntheticSpec(**{k: v for k, v in data_cfg.items() if k in spec_keys})
        return SyntheticSongDataModule(
            m,
            spec,
            batch_size=int(data_cfg.get("batch_size", 4)),
            num_workers=int(data_cfg.get("num_workers", 0)),
            val_songs=int(data_cfg.get("val_songs", 8)),
            frame_rate=sb_cfg.frame_rate,
        )
    if kind == "shards":
        shards_dir = data_cfg.get("shards_dir")
        manifest = data_cfg.get("manifest")
        if data_cfg.get("require_manifest", False) and not manifest:
            raise DataConfigError(f"data.manifest is required for this experiment: {MANIFEST_HELP}")
        if not shards_dir or not (Path(shards_dir) / "index.json").is_file():
            raise DataConfigError(
                f"data.shards_dir={shards_dir!r} holds no index.json (no preprocessed shards): {MANIFEST_HELP}"
            )
        if manifest and not Path(manifest).is_file():
            raise DataConfigError(f"data.manifest={manifest} does not exist: {MANIFEST_HELP}")
        from songbloom.data.datamodule import DataConfig, SongBloomDataModule

        known = DataConfig.__dataclass_fields__
        opts = {k: v for k, v in data_cfg.items() if k in known}
        opts.update(
            block_size=m.block_size,
            eos_id=m.eos_id,
            prompt_max_len=m.prompt_max_len,
            seed=int(data_cfg.get("seed", seed)),
        )
        return SongBloomDataModule(DataConfig(**opts))
    raise DataConfigError(f"data.kind={kind!r}: choose synthetic or shards")
