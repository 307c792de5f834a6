"""The merged generator as safetensors + ``config.json`` (our own export; ``init.source=export`` reads it).

Layout of the directory::

    generator.safetensors   the generator's state dict (fp32, adapters merged, EMA weights when used)
    config.json             {"songbloom": SongBloomConfig.to_dict(), "songbloom_export": "merged", "licences": ...}
    vae.safetensors         the VAE's state dict (when the VAE is known)
    vae_config.json         its stable-audio json config
    adapter.safetensors     the raw adapter tensors (training-time export of a LoRA run only)
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save

from songbloom.checkpoints.bundle import SongBloom
from songbloom.checkpoints.keys import CONFIG_FILE, GENERATOR_FILE, VAE_CONFIG_FILE, VAE_FILE
from songbloom.checkpoints.metadata import export_metadata, recorded_language
from songbloom.checkpoints.registry import CheckpointFormat, LoadOptions, load_checkpoint
from songbloom.checkpoints.safe_load import load_safetensors
from songbloom.checkpoints.strict import strict_load
from songbloom.checkpoints.vae import no_vae_error, vae_from_files
from songbloom.config import SongBloomConfig
from songbloom.models.songbloom import SongBloomModel
from songbloom.models.vae_factory import AnyVAE, vae_from_json
from songbloom.utils.atomic import atomic_write, atomic_write_text

logger = logging.getLogger(__name__)



def save_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> Path:
    blob = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=metadata)
    return atomic_write(path, lambda f: f.write(blob), binary=True)


def fp32_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    sd = model.state_dict()
    return {k: (v.detach().float() if v.is_floating_point() else v.detach()).contiguous() for k, v in sd.items()}


def check_plain(model: torch.nn.Module) -> None:
    wrapped = [n for n, m in model.named_modules() if hasattr(m, "base_layer") or hasattr(m, "modules_to_save")]
    if wrapped:
        raise ValueError(f"export the merged model: {len(wrapped)} modules still carry adapters, e.g. {wrapped[:3]}")


def export_merged(
    model: SongBloomModel,
    config: SongBloomConfig,
    out_dir: str | Path,
    *,
    vae: AnyVAE | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write a plain (already merged) generator, its config and, when given, the VAE."""
    check_plain(model)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"generator": save_safetensors(out_dir / GENERATOR_FILE, fp32_state_dict(model), {"format": "pt"})}
    if vae is not None:
        paths["vae"] = save_safetensors(out_dir / VAE_FILE, fp32_state_dict(vae), {"format": "pt"})
        paths["vae_config"] = atomic_write_text(out_dir / VAE_CONFIG_FILE, json.dumps(vae.cfg.to_dict(), indent=1))
    meta = {"songbloom": config.to_dict(), **(metadata or export_metadata("merged"))}
    meta.setdefault("songbloom_export", "merged")
    paths["config"] = atomic_write_text(out_dir / CONFIG_FILE, json.dumps(meta, indent=1, default=str))
    logger.info("merged export in %s (%s)", out_dir, ", ".join(sorted(paths)))
    return paths


def load_merged_generator(path: str | Path, config: SongBloomConfig | None = None) -> SongBloomModel:
    """The generator of an export directory (strictly, safetensors only), built from ``config`` (default: the
    directory's config.json); in eval mode."""
    path = Path(path)
    if config is None:
        config, _ = _read_export_config(path)
    model = SongBloomModel(config.model)
    strict_load(model, load_safetensors(path / GENERATOR_FILE), what=f"generator from {path / GENERATOR_FILE}")
    return model.eval()


def _read_export_config(path: Path) -> tuple[SongBloomConfig, dict[str, Any]]:
    cfg_path = path / CONFIG_FILE
    try:
        meta = json.loads(cfg_path.read_text(encoding="utf-8"))
        return SongBloomConfig.from_dict(meta["songbloom"]), meta
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{cfg_path}: not a songbloom export config ({e}); re-export with scripts/export.py") from e


def load_merged_export(path: str | Path) -> tuple[SongBloomConfig, SongBloomModel, AnyVAE | None, dict[str, Any]]:
    """(config, generator, VAE or None, metadata) of an export directory; strict loads, safetensors only."""
    path = Path(path)
    config, meta = _read_export_config(path)
    model = load_merged_generator(path, config)
    vae = None
    if (path / VAE_FILE).is_file():
        if not (path / VAE_CONFIG_FILE).is_file():
            raise FileNotFoundError(f"{path / VAE_FILE} has no {VAE_CONFIG_FILE} beside it; re-export the directory")
        vae = vae_from_json(path / VAE_CONFIG_FILE)
        strict_load(vae, load_safetensors(path / VAE_FILE), what=f"VAE from {path / VAE_FILE}")
    return config, model, vae, meta


# ------------------------------------------------------------------------------------------------ the format
def is_merged_export(path: str | Path) -> bool:
    """A directory with ``generator.safetensors`` and a ``config.json`` holding a ``songbloom`` config."""
    path = Path(path)
    if not (path.is_dir() and (path / GENERATOR_FILE).is_file() and (path / CONFIG_FILE).is_file()):
        return False
    try:
        return "songbloom" in json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


def _load(path: Path, opts: LoadOptions) -> SongBloom:
    cfg, model, vae, meta = load_merged_export(path)
    if vae is None and opts.base_path is not None:
        vae = load_checkpoint(opts.base_path).vae
    if vae is None and cfg.vae_config_path and cfg.vae_ckpt_path:
        vae = vae_from_files(cfg.vae_config_path, cfg.vae_ckpt_path)
    if vae is None:
        raise no_vae_error(path)
    language = recorded_language(meta)
    return SongBloom.loaded_from(path, cfg, model, vae, opts.device, opts.dtype, training_language=language)


FORMAT = CheckpointFormat(
    "songbloom_export",
    "a directory exported by scripts/export.py: generator.safetensors + config.json (+ vae.safetensors)",
    is_merged_export,
    _load,
)
