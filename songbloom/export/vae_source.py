"""Deprecated alias of songbloom.checkpoints.vae (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.vae import vae_for_run, vae_from_files
from songbloom.config.model import SongBloomConfig
from songbloom.models.vae import OobleckVAE
from songbloom.utils.deprecation import warn_moved

__all__ = [
    "OobleckVAE",
    "SongBloomConfig",
    "vae_for_run",
    "vae_from_files",
]

warn_moved(__name__, "songbloom.checkpoints.vae")
