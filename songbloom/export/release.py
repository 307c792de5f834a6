"""Deprecated alias of songbloom.checkpoints.formats.release (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.formats.merged import check_plain as _check_plain
from songbloom.checkpoints.formats.merged import fp32_state_dict
from songbloom.checkpoints.formats.release import (
    RELEASE_VAE_CKPT as VAE_CKPT,
)
from songbloom.checkpoints.formats.release import (
    RELEASE_VAE_JSON as VAE_JSON,
)
from songbloom.checkpoints.formats.release import (
    RELEASE_VOCAB as VOCAB,
)
from songbloom.checkpoints.formats.release import (
    export_release,
)
from songbloom.checkpoints.metadata import export_metadata
from songbloom.checkpoints.release_state import save_release_checkpoint
from songbloom.config.model import SongBloomConfig
from songbloom.models.songbloom import SongBloomModel
from songbloom.models.vae import OobleckVAE
from songbloom.utils.atomic import atomic_write, atomic_write_text
from songbloom.utils.deprecation import warn_moved

__all__ = [
    "OobleckVAE",
    "SongBloomConfig",
    "SongBloomModel",
    "VAE_CKPT",
    "VAE_JSON",
    "VOCAB",
    "_check_plain",
    "atomic_write",
    "atomic_write_text",
    "export_metadata",
    "export_release",
    "fp32_state_dict",
    "save_release_checkpoint",
]

warn_moved(__name__, "songbloom.checkpoints.formats.release")
