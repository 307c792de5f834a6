"""The merged generator as safetensors + ``config.json`` (our own export; ``init.source=export`` reads it).

Layout of the directory::

    generator.safetensors   the generator's state dict (fp32, adapters merged, EMA weights when used)
    config.json             {"songbloom": SongBloomConfig.to_dict(), "songbloom_export": "merged", "licences": ...}
    vae.safetensors         the VAE's state dict (when the VAE is known)
    vae_config.json         its stable-audio json config
    adapter.safetensors     the raw adapter tensors (training-time export of a LoRA run only)
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save

from songbloom.config import SongBloomConfig
from songbloom.export.detect import CONFIG_FILE, GENERATOR_FILE, is_merged_export  # noqa: F401
from songbloom.export.metadata import export_metadata
from songbloom.models.songbloom import SongBloomModel
from songbloom.models.vae import OobleckVAE
from songbloom.utils.atomic import atomic_write, atomic_write_text

if TYPE_CHECKING:
    from songbloom.training.lit_module import SongBloomLitModule

logger = logging.getLogger(__name__)

VAE_FILE = "vae.safetensors"
VAE_CONFIG_FILE = "vae_config.json"
ADAPTER_FILE = "adapter.safetensors"


def _save_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> Path:
    blob = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=metadata)
    return atomic_write(path, lambda f: f.write(blob), binary=True)


def fp32_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    sd = model.state_dict()
    return {k: (v.detach().float() if v.is_floating_point() else v.detach()).contiguous() for k, v in sd.items()}


def _check_plain(model: torch.nn.Module) -> None:
    wrapped = [n for n, m in model.named_modules() if hasattr(m, "base_layer") or hasattr(m, "modules_to_save")]
    if wrapped:
        raise ValueError(f"export the merged model: {len(wrapped)} modules still carry adapters, e.g. {wrapped[:3]}")


def export_merged(
    model: SongBloomModel,
    config: SongBloomConfig,
    out_dir: str | Path,
    *,
    vae: OobleckVAE | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write a plain (already merged) generator, its config and, when given, the VAE."""
    _check_plain(model)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"generator": _save_safetensors(out_dir / GENERATOR_FILE, fp32_state_dict(model), {"format": "pt"})}
    if vae is not None:
        paths["vae"] = _save_safetensors(out_dir / VAE_FILE, fp32_state_dict(vae), {"format": "pt"})
        paths["vae_config"] = atomic_write_text(out_dir / VAE_CONFIG_FILE, json.dumps(vae.cfg.to_dict(), indent=1))
    meta = {"songbloom": config.to_dict(), **(metadata or export_metadata("merged"))}
    meta.setdefault("songbloom_export", "merged")
    paths["config"] = atomic_write_text(out_dir / CONFIG_FILE, json.dumps(meta, indent=1, default=str))
    logger.info("merged export in %s (%s)", out_dir, ", ".join(sorted(paths)))
    return paths


def load_merged_export(path: str | Path) -> tuple[SongBloomConfig, SongBloomModel, OobleckVAE | None, dict[str, Any]]:
    """(config, generator, VAE or None, metadata) of an export directory; strict loads, safetensors only."""
    from songbloom.checkpoint import strict_load
    from songbloom.models.vae import VAEConfig

    path = Path(path)
    cfg_path = path / CONFIG_FILE
    try:
        meta = json.loads(cfg_path.read_text(encoding="utf-8"))
        config = SongBloomConfig.from_dict(meta["songbloom"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{cfg_path}: not a songbloom export config ({e}); re-export with scripts/export.py") from e
    model = SongBloomModel(config.model)
    strict_load(model, load_file(str(path / GENERATOR_FILE)), what=f"generator from {path / GENERATOR_FILE}")
    vae = None
    if (path / VAE_FILE).is_file():
        if not (path / VAE_CONFIG_FILE).is_file():
            raise FileNotFoundError(f"{path / VAE_FILE} has no {VAE_CONFIG_FILE} beside it; re-export the directory")
        vae = OobleckVAE(VAEConfig.from_json(path / VAE_CONFIG_FILE))
        strict_load(vae, load_file(str(path / VAE_FILE)), what=f"VAE from {path / VAE_FILE}")
    return config, model.eval(), vae, meta


def trained_copy(lit: SongBloomLitModule) -> SongBloomModel:
    """A CPU copy of the training module's generator with the EMA weights when the run kept them (unmerged).

    Called when training is over: a GPU model is moved to the CPU first, so the copy never doubles GPU memory.
    """
    ema = lit.ema
    if next(lit.model.parameters()).device.type != "cpu":
        lit.model.cpu()
        if ema is not None:
            ema.to(torch.device("cpu"))
    ctx = ema.swapped_in(lit.model) if ema is not None and ema.num_updates > 0 else contextlib.nullcontext()
    with ctx:
        return copy.deepcopy(lit.model).eval()


def export_generator(
    lit: SongBloomLitModule,
    sb_cfg: SongBloomConfig,
    out_dir: Path,
    *,
    merge: bool = True,
    extra: dict | None = None,
    vae: OobleckVAE | None = None,
    licences: list[dict[str, Any]] | None = None,
    trained: SongBloomModel | None = None,
) -> dict[str, Path]:
    """End of training: the generator (EMA weights when enabled, LoRA merged) + config, and the raw adapters.

    ``trained``: an already made :func:`trained_copy`; with ``merge`` its adapters are folded in place, so the
    caller can reuse it as the merged model afterwards.
    """
    from songbloom.training.lora import adapter_state_dict, merge_lora

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    model = trained if trained is not None else trained_copy(lit)
    adapters = adapter_state_dict(model)
    if adapters:
        paths["adapter"] = _save_safetensors(out_dir / ADAPTER_FILE, adapters, {"format": "pt"})
    meta = export_metadata("merged", source="training run", licences=licences, **(extra or {}))
    if adapters and merge:
        model = merge_lora(model)
    if not adapters or merge:
        paths.update(export_merged(model, sb_cfg, out_dir, vae=vae, metadata=meta))
    else:
        paths["config"] = atomic_write_text(
            out_dir / CONFIG_FILE, json.dumps({"songbloom": sb_cfg.to_dict(), **meta}, indent=1, default=str)
        )
    return paths
