"""Which VAE belongs to a trained generator: training checkpoints hold the generator only."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from songbloom.config import SongBloomConfig
from songbloom.models.vae import OobleckVAE

logger = logging.getLogger(__name__)


def vae_from_files(config_path: str | Path, ckpt_path: str | Path) -> OobleckVAE:
    """Strict, weights-only load of a stable-audio VAE json + checkpoint pair."""
    from songbloom.checkpoint import load_vae_checkpoint, strict_load
    from songbloom.models.vae import VAEConfig

    sd = load_vae_checkpoint(ckpt_path)  # read the (small) state dict first: a bad file fails before any build
    vae = OobleckVAE(VAEConfig.from_json(config_path))
    strict_load(vae, sd, what=f"VAE from {ckpt_path}")
    return vae.eval()


def vae_for_run(run_config: dict[str, Any], sb_cfg: SongBloomConfig) -> OobleckVAE | None:
    """The VAE a run's data was encoded with: the init release's files, else the demo's tiny VAE.

    None when neither is known (a scratch run on external shards): the caller says what to pass instead.
    """
    if sb_cfg.vae_config_path and sb_cfg.vae_ckpt_path:
        try:
            return vae_from_files(sb_cfg.vae_config_path, sb_cfg.vae_ckpt_path)
        except (OSError, ValueError) as e:
            logger.warning("the VAE files named by the model config are not usable (%s)", e)
    if (run_config.get("demo") or {}).get("enabled"):
        from songbloom.training.demo import _tiny_vae

        return _tiny_vae()
    return None
