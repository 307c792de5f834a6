"""Deprecated alias of songbloom.checkpoints.formats.training (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.formats.training import (
    TrainedModel,
    is_training_checkpoint,
    load_training_checkpoint,
    read_training_checkpoint,
)
from songbloom.checkpoints.formats.training import (
    recorded_base_ref as _base_ref,
)
from songbloom.checkpoints.keys import TRAINING_CONFIG_KEY
from songbloom.checkpoints.metadata import checkpoint_licences
from songbloom.config.model import SongBloomConfig
from songbloom.models.songbloom import SongBloomModel
from songbloom.models.vae import OobleckVAE
from songbloom.utils.deprecation import warn_moved

__all__ = [
    "OobleckVAE",
    "SongBloomConfig",
    "SongBloomModel",
    "TRAINING_CONFIG_KEY",
    "TrainedModel",
    "_base_ref",
    "checkpoint_licences",
    "is_training_checkpoint",
    "load_training_checkpoint",
    "read_training_checkpoint",
]

warn_moved(__name__, "songbloom.checkpoints.formats.training")
