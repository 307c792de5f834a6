"""Export in the official release layout: what the official ``infer.py`` and our ``load_checkpoint`` read.

A directory holding ``<name>.pt`` (the flat ``model.*`` + ``vae.vae.*`` state dict of the current official
layout, without the release-era duplicate VAE block), ``<name>.yaml`` (every file named through
``${dynamic_path:???/...}``), the VAE json + checkpoint and the lyric vocabulary, plus ``<name>.export.json``
with where it came from and its licences (the official loader ignores it).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from songbloom.checkpoint import save_release_checkpoint
from songbloom.config import SongBloomConfig
from songbloom.export.merged import _check_plain, fp32_state_dict
from songbloom.export.metadata import export_metadata
from songbloom.models.songbloom import SongBloomModel
from songbloom.models.vae import OobleckVAE
from songbloom.utils.atomic import atomic_write, atomic_write_text

logger = logging.getLogger(__name__)

VAE_JSON = "stable_audio_1920_vae.json"
VAE_CKPT = "autoencoder_music_dsp1920.ckpt"
VOCAB = "vocab_g2p.yaml"


def export_release(
    model: SongBloomModel,
    config: SongBloomConfig,
    vae: OobleckVAE,
    out_dir: str | Path,
    *,
    name: str = "songbloom",
    metadata: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write the release file set for a plain (merged) generator and its VAE; returns the written paths."""
    _check_plain(model)
    if vae is None:
        raise ValueError("a release-format export needs the VAE (the official loader decodes with it)")
    if not name or any(c in name for c in "/\\\0") or name.startswith("."):
        raise ValueError(f"export name {name!r} must be a plain file stem")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vae_sd = fp32_state_dict(vae)
    pt = save_release_checkpoint(out / f"{name}.pt", fp32_state_dict(model), vae_sd)
    atomic_write_text(out / VAE_JSON, json.dumps(vae.cfg.to_dict(), indent=1))
    atomic_write(out / VAE_CKPT, lambda f: torch.save({"state_dict": vae_sd}, f), binary=True)
    yaml_cfg = SongBloomConfig.from_dict(config.to_dict())  # a copy without our absolute file paths
    yaml_cfg.pretrained_path = yaml_cfg.vae_config_path = yaml_cfg.vae_ckpt_path = None
    from songbloom.release.yaml_writer import write_release_yaml

    written_yaml = write_release_yaml(
        yaml_cfg,
        out,
        yaml_name=f"{name}.yaml",
        pt_name=pt.name,
        vae_json_name=VAE_JSON,
        vae_ckpt_name=VAE_CKPT,
        vocab_name=VOCAB,
        overwrite=True,
    )
    meta = metadata or export_metadata("release")
    meta = {**meta, "songbloom_export": "release"}
    meta_path = atomic_write_text(out / f"{name}.export.json", json.dumps(meta, indent=1, default=str))
    logger.info("release-format export %s (%s, %s)", out, pt.name, written_yaml.name)
    return {
        "release_pt": pt,
        "release_yaml": written_yaml,
        "vae_json": out / VAE_JSON,
        "vae_ckpt": out / VAE_CKPT,
        "vocab": out / VOCAB,
        "metadata": meta_path,
    }
