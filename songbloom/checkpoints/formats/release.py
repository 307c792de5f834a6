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

from songbloom.checkpoints.bundle import SongBloom, release_yaml_candidates
from songbloom.checkpoints.formats.merged import check_plain, fp32_state_dict
from songbloom.checkpoints.keys import RELEASE_VAE_CKPT, RELEASE_VAE_JSON, RELEASE_VOCAB
from songbloom.checkpoints.metadata import export_metadata, recorded_language
from songbloom.checkpoints.registry import WEIGHT_SUFFIXES, CheckpointFormat, LoadOptions
from songbloom.checkpoints.release_state import read_release_checkpoint, save_release_checkpoint
from songbloom.checkpoints.release_yaml_writer import write_release_yaml
from songbloom.checkpoints.strict import strict_load
from songbloom.checkpoints.vae import load_vae_checkpoint
from songbloom.config import SongBloomConfig
from songbloom.models.songbloom import SongBloomModel
from songbloom.models.vae_factory import AnyVAE, build_vae, vae_config_from_json
from songbloom.utils.atomic import atomic_write, atomic_write_text

logger = logging.getLogger(__name__)

VAE_JSON, VAE_CKPT, VOCAB = RELEASE_VAE_JSON, RELEASE_VAE_CKPT, RELEASE_VOCAB


def export_release(
    model: SongBloomModel,
    config: SongBloomConfig,
    vae: AnyVAE,
    out_dir: str | Path,
    *,
    name: str = "songbloom",
    metadata: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write the release file set for a plain (merged) generator and its VAE; returns the written paths."""
    check_plain(model)
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


# ------------------------------------------------------------------------------------------------ release layouts
def _detect_release_dir(path: Path) -> bool:
    return path.is_dir() and len(release_yaml_candidates(path)) == 1


def release_language(pt_or_dir: Path) -> str | None:
    """The training language recorded beside a release export (``<name>.export.json``), or None."""
    found = sorted(pt_or_dir.glob("*.export.json")) if pt_or_dir.is_dir() else [
        pt_or_dir.with_name(pt_or_dir.stem + ".export.json")
    ]
    if len(found) != 1 or not found[0].is_file():
        return None
    try:
        return recorded_language(json.loads(found[0].read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def _load_release_dir(path: Path, opts: LoadOptions) -> SongBloom:
    bundle = SongBloom.from_release_dir(path, device=opts.device, dtype=opts.dtype)
    bundle.training_language = release_language(path)
    return bundle


def _yaml_naming(pt: Path) -> Path | None:
    """The release YAML beside ``pt``: ``<stem>.yaml``, else the only model YAML whose pretrained_path names it."""
    same_stem = [pt.with_suffix(s) for s in (".yaml", ".yml") if pt.with_suffix(s).is_file()]
    if same_stem:
        return same_stem[0]
    naming = []
    for y in release_yaml_candidates(pt.parent):
        for line in y.read_text(encoding="utf-8").splitlines():
            if line.strip().startswith("pretrained_path:") and pt.name in line:
                naming.append(y)
    return naming[0] if len(naming) == 1 else None


def _detect_release_pt(path: Path) -> bool:
    return path.is_file() and path.suffix in WEIGHT_SUFFIXES and _yaml_naming(path) is not None


def _load_release_pt(path: Path, opts: LoadOptions) -> SongBloom:
    """A release ``.pt`` (``model.*`` + ``vae.vae.*``), its settings from the model YAML beside it."""
    yaml_path = opts.config_path or _yaml_naming(path)
    if yaml_path is None:
        raise FileNotFoundError(
            f"{path}: no model YAML found beside it ({path.with_suffix('.yaml').name}, or one whose "
            "pretrained_path names this file); the model settings are read from that YAML"
        )
    cfg = SongBloomConfig.from_release_yaml(yaml_path)
    if not cfg.vae_config_path or not Path(cfg.vae_config_path).is_file():
        raise FileNotFoundError(f"{yaml_path}: the VAE config vae.vae_cfg={cfg.vae_config_path!r} does not exist")
    gen_sd, vae_sd, _ = read_release_checkpoint(path, require_vae=False)
    model = SongBloomModel(cfg.model)
    strict_load(model, gen_sd, what=f"generator from {path}")
    vae = build_vae(vae_config_from_json(cfg.vae_config_path))
    vae_source = path
    if not vae_sd:
        if not cfg.vae_ckpt_path or not Path(cfg.vae_ckpt_path).is_file():
            raise FileNotFoundError(f"{path} holds no VAE and {yaml_path} names no existing vae.vae_ckpt")
        vae_sd, vae_source = load_vae_checkpoint(cfg.vae_ckpt_path), Path(cfg.vae_ckpt_path)
    strict_load(vae, vae_sd, what=f"VAE from {vae_source}")
    language = release_language(path)
    return SongBloom.loaded_from(path, cfg, model, vae, opts.device, opts.dtype, training_language=language)


RELEASE_DIR = CheckpointFormat(
    "release_dir",
    "a directory with one release model YAML whose ???/ paths name files in that directory",
    _detect_release_dir,
    _load_release_dir,
)
RELEASE_PT = CheckpointFormat(
    "release_pt",
    "a release .pt (model.* + vae.vae.*) with its model YAML beside it (<stem>.yaml or naming it)",
    _detect_release_pt,
    _load_release_pt,
)
