"""Deprecated alias of songbloom.checkpoints.formats.merged (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.formats.merged import (
    check_plain as _check_plain,
)
from songbloom.checkpoints.formats.merged import (
    export_merged,
    fp32_state_dict,
    is_merged_export,
    load_merged_export,
)
from songbloom.checkpoints.keys import GENERATOR_FILE, VAE_CONFIG_FILE, VAE_FILE
from songbloom.checkpoints.metadata import export_metadata
from songbloom.config.model import SongBloomConfig
from songbloom.models.songbloom import SongBloomModel
from songbloom.models.vae import OobleckVAE
from songbloom.training.export import ADAPTER_FILE, CONFIG_FILE, export_generator, trained_copy
from songbloom.utils.atomic import atomic_write, atomic_write_text
from songbloom.utils.deprecation import warn_moved

__all__ = [
    "ADAPTER_FILE",
    "CONFIG_FILE",
    "GENERATOR_FILE",
    "OobleckVAE",
    "SongBloomConfig",
    "SongBloomModel",
    "VAE_CONFIG_FILE",
    "VAE_FILE",
    "_check_plain",
    "atomic_write",
    "atomic_write_text",
    "export_generator",
    "export_merged",
    "export_metadata",
    "fp32_state_dict",
    "is_merged_export",
    "load_merged_export",
    "trained_copy",
]

warn_moved(__name__, "songbloom.checkpoints.formats.merged")
