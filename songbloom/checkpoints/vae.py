"""The one place a VAE is read from (and a proxy VAE written to) disk: its checkpoint, a json + checkpoint pair,
or the VAE of a run.

Training checkpoints hold the generator only, so :func:`vae_for_run` says which VAE belongs to one. The json says
which kind of VAE it is (:mod:`songbloom.models.vae_factory`): the release's Oobleck VAE or the frame-linear proxy.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as save_safetensors_bytes
from torch import Tensor

from songbloom.checkpoints.keys import VAE_KEY_ROOTS
from songbloom.checkpoints.safe_load import check_tensors, load_safetensors, torch_load_safely
from songbloom.checkpoints.strict import CheckpointMismatchError, strict_load
from songbloom.config import SongBloomConfig
from songbloom.config.run import RunConfig, as_run_config
from songbloom.models.frame_vae import FrameLinearConfig, FrameLinearVAE
from songbloom.models.vae import OobleckVAE, VAEConfig
from songbloom.models.vae_factory import AnyVAE, AnyVAEConfig, build_vae, vae_config_from_json
from songbloom.utils.atomic import atomic_write, atomic_write_text

logger = logging.getLogger(__name__)

_REPORT_LIMIT = 20
DEMO_VAE_SEED = 0
FRAME_VAE_STEM = "frame_linear_vae"
"""File stem :func:`save_frame_vae` writes: ``<stem>.json`` and ``<stem>.ckpt`` (or ``.safetensors``)."""


def load_vae_checkpoint(path: str | Path) -> dict[str, Tensor]:
    """Read the VAE checkpoint (``{'state_dict': {encoder.*, decoder.*}}``, the form the release ships), or a
    ``.safetensors`` file holding the flat ``encoder.*``/``decoder.*`` state dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VAE checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        sd = load_safetensors(path)
    else:
        obj = torch_load_safely(path)
        if not isinstance(obj, Mapping) or not isinstance(obj.get("state_dict"), Mapping):
            keys = sorted(map(str, obj))[:10] if isinstance(obj, Mapping) else type(obj).__name__
            raise ValueError(f"{path}: expected {{'state_dict': {{encoder.*, decoder.*}}}}, got {keys}")
        sd = check_tensors(obj["state_dict"], path)
    odd = sorted(k for k in sd if not k.startswith(VAE_KEY_ROOTS))
    if odd:
        raise CheckpointMismatchError(
            f"{path}: VAE state dict keys must start with encoder. or decoder.; "
            f"{len(odd)} do not: {odd[:_REPORT_LIMIT]}",
            unexpected=odd,
        )
    return sd


def vae_from_files(config_path: str | Path, ckpt_path: str | Path) -> AnyVAE:
    """Strict, weights-only load of a VAE json (its ``model_type`` says which kind) + checkpoint pair."""
    sd = load_vae_checkpoint(ckpt_path)  # read the (small) state dict first: a bad file fails before any build
    vae = build_vae(vae_config_from_json(config_path))
    strict_load(vae, sd, what=f"VAE from {ckpt_path}")
    return vae.eval()


def save_frame_vae(
    vae: FrameLinearVAE, directory: str | Path, *, stem: str = FRAME_VAE_STEM, safetensors: bool = False
) -> tuple[Path, Path]:
    """Write a frame-linear VAE as ``<stem>.json`` + ``<stem>.ckpt`` (``{'state_dict': ...}``, tensors only, loadable
    with weights_only) or ``<stem>.safetensors``; returns (json path, weights path) for :func:`vae_from_files`."""
    if not isinstance(vae, FrameLinearVAE):
        raise TypeError(f"save_frame_vae writes a FrameLinearVAE, got {type(vae).__name__}")
    if not stem or any(c in stem for c in "/\\\0") or stem.startswith("."):
        raise ValueError(f"stem {stem!r} must be a plain file stem")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().float().cpu().contiguous() for k, v in vae.state_dict().items()}
    json_path = atomic_write_text(out / f"{stem}.json", json.dumps(vae.cfg.to_dict(), indent=4) + "\n")
    if safetensors:
        blob = save_safetensors_bytes(sd, metadata={"format": "pt"})
        ckpt_path = atomic_write(out / f"{stem}.safetensors", lambda f: f.write(blob), binary=True)
    else:
        ckpt_path = atomic_write(out / f"{stem}.ckpt", lambda f: torch.save({"state_dict": sd}, f), binary=True)
    logger.info("frame-linear VAE written to %s and %s", json_path, ckpt_path)
    return json_path, ckpt_path


def vae_for_run(run_config: RunConfig | Mapping[str, Any], sb_cfg: SongBloomConfig) -> AnyVAE | None:
    """The VAE a run's data was encoded with: the init release's files, else the demo's tiny VAE.

    None when neither is known (a scratch run on external shards): the caller says what to pass instead.
    """
    if sb_cfg.vae_config_path and sb_cfg.vae_ckpt_path:
        try:
            return vae_from_files(sb_cfg.vae_config_path, sb_cfg.vae_ckpt_path)
        except (OSError, ValueError) as e:
            logger.warning("the VAE files named by the model config are not usable (%s)", e)
    if as_run_config(run_config).demo.enabled:
        return demo_vae()
    return None


def demo_vae() -> OobleckVAE:
    """The random tiny VAE the demo experiment encodes and decodes with (a fixed seed on both sides)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(DEMO_VAE_SEED)
        return OobleckVAE(VAEConfig.tiny()).eval()


def no_vae_error(path: Path) -> FileNotFoundError:
    """What to say when a generator's checkpoint neither holds a VAE nor names one."""
    return FileNotFoundError(
        f"{path}: no VAE is known for this model (it is not stored with it and the run used neither release VAE "
        "files nor the demo VAE); pass a base model whose VAE to use (infer.py --base-ckpt <release dir or .pt>)"
    )


# ------------------------------------------------------------------------------------------------ any VAE file
def state_dict_problems(expected: Mapping[str, torch.Tensor], found: Mapping[str, Any], limit: int = 20) -> list[str]:
    """Missing, unexpected and shape-mismatched keys as readable lines (empty when ``found`` fits exactly)."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    mismatched = [
        f"{k}: checkpoint {tuple(found[k].shape)}, model {tuple(expected[k].shape)}"
        for k in expected
        if k in found and hasattr(found[k], "shape") and tuple(found[k].shape) != tuple(expected[k].shape)
    ]
    not_tensors = [k for k in expected if k in found and not isinstance(found[k], torch.Tensor)]
    lines = []
    for title, items in (
        ("missing keys", missing),
        ("unexpected keys", unexpected),
        ("shape mismatches", mismatched),
        ("entries that are not tensors", not_tensors),
    ):
        if items:
            shown = "\n      ".join(items[:limit])
            more = f"\n      ... and {len(items) - limit} more" if len(items) > limit else ""
            lines.append(f"{len(items)} {title}:\n      {shown}{more}")
    return lines


def _common_prefix_hint(expected: Mapping[str, Any], found: Mapping[str, Any]) -> str | None:
    """The prefix under which ``found`` holds every expected key (e.g. ``vae.vae.``), if there is one."""
    if not expected or all(k in found for k in expected):
        return None
    probe = next(iter(expected))
    for key in found:
        if key.endswith("." + probe):
            prefix = key[: -len(probe)]
            if all(prefix + k in found for k in expected):
                return prefix
    return None


def _read_checkpoint(path: Path, map_location: str | torch.device) -> Mapping[str, Any]:
    if path.suffix == ".safetensors":
        return load_safetensors(path, device=str(map_location))
    obj = torch_load_safely(path)
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        return obj["state_dict"]
    if isinstance(obj, Mapping) and all(isinstance(k, str) for k in obj):
        return obj
    raise ValueError(f"{path}: expected {{'state_dict': {{...}}}} or a flat state dict, got {type(obj).__name__}")


def _geometry(cfg: AnyVAEConfig) -> str:
    if isinstance(cfg, FrameLinearConfig):
        return f"frame-linear latent_dim={cfg.latent_dim}, hop={cfg.hop}, io_channels={cfg.io_channels}"
    return (
        f"latent_dim={cfg.latent_dim}, channels={cfg.encoder.channels}, c_mults={list(cfg.encoder.c_mults)}, "
        f"strides={list(cfg.encoder.strides)}"
    )


def load_vae(
    config: AnyVAEConfig | str | Path,
    ckpt_path: str | Path | None = None,
    map_location: str | torch.device = "cpu",
) -> AnyVAE:
    """Build the VAE from a config (or its json path, any known ``model_type``) and load a checkpoint strictly;
    frozen, eval mode, float32.

    The checkpoint is the release's ``{'state_dict': {...}}`` (keys ``encoder.*``/``decoder.*``), a flat state dict,
    or a ``.safetensors`` file; it is read with ``weights_only=True``. Any missing, unexpected or wrongly shaped key
    raises a ValueError that lists them. Without ``ckpt_path`` the weights stay randomly initialised.
    """
    cfg = config if isinstance(config, (VAEConfig, FrameLinearConfig)) else vae_config_from_json(config)
    vae = build_vae(cfg)
    if ckpt_path is None:
        logger.warning("load_vae: no checkpoint given, the VAE keeps its random initial weights")
    else:
        path = Path(ckpt_path)
        if not path.is_file():
            raise FileNotFoundError(f"VAE checkpoint not found: {path}")
        state = _read_checkpoint(path, map_location)
        expected = vae.state_dict()
        problems = state_dict_problems(expected, state)
        prefix = _common_prefix_hint(expected, state)
        if prefix:
            problems.append(
                f"the checkpoint holds the VAE under the prefix {prefix!r} (a full SongBloom checkpoint?): "
                "strip that prefix from the keys, or point ckpt_path at the VAE checkpoint"
            )
        if problems:
            raise ValueError(
                f"{path} does not fit the VAE geometry ({_geometry(cfg)}):\n  "
                + "\n  ".join(problems)
                + "\nCheck that the config json belongs to this checkpoint."
            )
        vae.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return vae.to(map_location).eval().requires_grad_(False)
