"""Deprecated alias of songbloom.checkpoints.vae (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.vae import vae_for_run, vae_from_files  # noqa: E402, F401
from songbloom.config.model import SongBloomConfig  # noqa: E402, F401
from songbloom.models.vae import OobleckVAE  # noqa: E402, F401
from songbloom.utils.deprecation import warn_moved

warn_moved(__name__, "songbloom.checkpoints.vae")
