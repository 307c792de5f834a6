"""One way from a VAE json to a VAE: dispatch on its ``model_type``.

``"autoencoder"`` (or no ``model_type``, as in older stable-audio files) is the Stable Audio Oobleck VAE the
release ships (:class:`~songbloom.models.vae.OobleckVAE`); ``"songbloom_frame_linear"`` is the per-frame
linear proxy VAE (:class:`~songbloom.models.frame_vae.FrameLinearVAE`). Every loader that reads a VAE json
(release directories, merged exports, VAE file pairs, preprocessing) goes through here, so a new kind is
added in one place.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeAlias

from songbloom.models.frame_vae import FRAME_LINEAR_MODEL_TYPE, FrameLinearConfig, FrameLinearVAE
from songbloom.models.vae import OobleckVAE, VAEConfig

AnyVAE: TypeAlias = OobleckVAE | FrameLinearVAE
AnyVAEConfig: TypeAlias = VAEConfig | FrameLinearConfig

STABLE_AUDIO_MODEL_TYPE = "autoencoder"
VAE_MODEL_TYPES: dict[str, str] = {
    STABLE_AUDIO_MODEL_TYPE: "the Stable Audio Oobleck VAE (stable_audio_1920_vae.json)",
    FRAME_LINEAR_MODEL_TYPE: "the per-frame linear proxy VAE (songbloom.models.frame_vae)",
}


def vae_config_from_dict(d: Mapping[str, Any]) -> AnyVAEConfig:
    """The typed config of a VAE json's content; an unknown ``model_type`` lists the known ones."""
    if not isinstance(d, Mapping):
        raise ValueError(f"a VAE config is a json object, got {type(d).__name__}")
    model_type = d.get("model_type", STABLE_AUDIO_MODEL_TYPE)
    if model_type == STABLE_AUDIO_MODEL_TYPE:
        return VAEConfig.from_dict(d)
    if model_type == FRAME_LINEAR_MODEL_TYPE:
        return FrameLinearConfig.from_dict(d)
    known = "; ".join(f"{k!r}: {v}" for k, v in VAE_MODEL_TYPES.items())
    raise ValueError(f"model_type {model_type!r} is not a VAE kind songbloom builds; valid model_type values: {known}")


def vae_config_from_json(path: str | Path) -> AnyVAEConfig:
    """Read a VAE json of any known kind; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VAE config {path} does not exist")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON (line {err.lineno}, column {err.colno}): {err.msg}") from err
    try:
        return vae_config_from_dict(raw)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def build_vae(cfg: AnyVAEConfig) -> AnyVAE:
    """The (randomly initialised) VAE module a config describes."""
    if isinstance(cfg, VAEConfig):
        return OobleckVAE(cfg)
    if isinstance(cfg, FrameLinearConfig):
        return FrameLinearVAE(cfg)
    raise TypeError(f"build_vae takes a VAEConfig or FrameLinearConfig, got {type(cfg).__name__}")


def vae_from_json(path: str | Path) -> AnyVAE:
    """The VAE module of a json of any known kind, with random weights (load a checkpoint into it)."""
    return build_vae(vae_config_from_json(path))
