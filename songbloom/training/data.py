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


SHARDS_OPTIONS = ("manifest", "require_manifest")  # checked here, not passed to the datamodule
SHARDS_SET_BY_RUN = ("block_size", "eos_id", "prompt_max_len")  # from the model config


def synthetic(
    songbloom_config: SongBloomConfig,
    batch_size: int = 4,
    num_workers: int = 0,
    val_songs: int = 8,
    **spec: Any,
) -> L.LightningDataModule:
    """``conf/data/synthetic.yaml``: in-memory synthetic songs (keys of :class:`SyntheticSpec` besides these)."""
    return SyntheticSongDataModule(
        songbloom_config.model,
        SyntheticSpec(**spec),
        batch_size=int(batch_size),
        num_workers=int(num_workers),
        val_songs=int(val_songs),
        frame_rate=songbloom_config.frame_rate,
    )


synthetic.__config_keys__ = ("batch_size", "num_workers", "val_songs", *SyntheticSpec.__dataclass_fields__)
synthetic.data_kind = "synthetic"


def shards(
    songbloom_config: SongBloomConfig,
    run_seed: int,
    shards_dir: str | None = None,
    manifest: str | None = None,
    require_manifest: bool = False,
    **opts: Any,
) -> L.LightningDataModule:
    """``conf/data/shards.yaml``: preprocessed WebDataset shards (keys of ``songbloom.data.DataConfig``)."""
    if require_manifest and not manifest:
        raise DataConfigError(f"data.manifest is required for this experiment: {MANIFEST_HELP}")
    if not shards_dir or not (Path(shards_dir) / "index.json").is_file():
        raise DataConfigError(
            f"data.shards_dir={shards_dir!r} holds no index.json (no preprocessed shards): {MANIFEST_HELP}"
        )
    if manifest and not Path(manifest).is_file():
        raise DataConfigError(f"data.manifest={manifest} does not exist: {MANIFEST_HELP}")
    from songbloom.data.datamodule import DataConfig, SongBloomDataModule

    m = songbloom_config.model
    opts.update(
        shards_dir=shards_dir,
        block_size=m.block_size,
        eos_id=m.eos_id,
        prompt_max_len=m.prompt_max_len,
        seed=int(opts.get("seed", run_seed)),
    )
    return SongBloomDataModule(DataConfig(**opts))


def shards_keys() -> tuple[str, ...]:
    from songbloom.data.datamodule import DataConfig

    return (*SHARDS_OPTIONS, *(k for k in DataConfig.__dataclass_fields__ if k not in SHARDS_SET_BY_RUN))


class _LazyKeys:
    """``shards.__config_keys__`` without importing the data pipeline until a config is checked."""

    def __iter__(self):
        return iter(shards_keys())


shards.__config_keys__ = _LazyKeys()
shards.data_kind = "shards"
SHARDS_TARGET = f"{__name__}.shards"


def build_datamodule(data_cfg: Mapping[str, Any], sb_cfg: SongBloomConfig, *, seed: int) -> L.LightningDataModule:
    """The datamodule of a ``data`` block (``_target_`` = :func:`synthetic` or :func:`shards`, or your own)."""
    from songbloom.training.instantiate import instantiate

    if "_target_" not in data_cfg:
        raise DataConfigError(f"data: no _target_ in {dict(data_cfg)!r}; pick data=synthetic, data=shards or ...")
    return instantiate(data_cfg, songbloom_config=sb_cfg, run_seed=seed)


def data_kind(data_cfg: Mapping[str, Any]) -> str:
    """``synthetic``, ``shards`` or ``custom``: what the licence record says about the training data."""
    from songbloom.training.instantiate import locate

    return str(getattr(locate(str(data_cfg["_target_"])), "data_kind", "custom"))
