"""Deprecated alias of songbloom.checkpoints.formats.fork (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.fork_file import ForkCheckpoint, read_fork_checkpoint
from songbloom.checkpoints.fork_key_mapping import MappingReport, map_fork_state_dict
from songbloom.checkpoints.formats.fork import (
    RELEASE_VAE_JSON as VAE_JSON,
)
from songbloom.checkpoints.formats.fork import (
    RELEASE_VOCAB as VOCAB,
)
from songbloom.checkpoints.formats.fork import (
    REPORT_SUFFIX,
    UNKNOWN,
    ForkModel,
    VAEConfig,
    config_from_hparams,
    convert_fork_checkpoint,
    fork_licences,
    fork_settings,
    load_fork_checkpoint,
    map_fork_checkpoint,
)
from songbloom.checkpoints.release_state import save_release_checkpoint
from songbloom.checkpoints.strict import CheckpointMismatchError, strict_load
from songbloom.config.model import SongBloomConfig
from songbloom.licences import licence_record, merge_licences, warn_if_non_commercial
from songbloom.models.songbloom import SongBloomModel
from songbloom.models.vae import OobleckVAE
from songbloom.utils.atomic import atomic_write
from songbloom.utils.deprecation import warn_moved

__all__ = [
    "CheckpointMismatchError",
    "ForkCheckpoint",
    "ForkModel",
    "MappingReport",
    "OobleckVAE",
    "REPORT_SUFFIX",
    "SongBloomConfig",
    "SongBloomModel",
    "UNKNOWN",
    "VAEConfig",
    "VAE_JSON",
    "VOCAB",
    "atomic_write",
    "config_from_hparams",
    "convert_fork_checkpoint",
    "fork_licences",
    "fork_settings",
    "licence_record",
    "load_fork_checkpoint",
    "map_fork_checkpoint",
    "map_fork_state_dict",
    "merge_licences",
    "read_fork_checkpoint",
    "save_release_checkpoint",
    "strict_load",
    "warn_if_non_commercial",
]

warn_moved(__name__, "songbloom.checkpoints.formats.fork")
