"""Deprecated alias of songbloom.checkpoints.formats.training (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.formats.training import (  # noqa: E402, F401
    TrainedModel,
    is_training_checkpoint,
    load_training_checkpoint,
    read_training_checkpoint,
)
from songbloom.checkpoints.keys import TRAINING_CONFIG_KEY  # noqa: E402, F401
from songbloom.checkpoints.metadata import checkpoint_licences  # noqa: E402, F401
from songbloom.config.model import SongBloomConfig  # noqa: E402, F401
from songbloom.models.songbloom import SongBloomModel  # noqa: E402, F401
from songbloom.models.vae import OobleckVAE  # noqa: E402, F401
from songbloom.utils.deprecation import warn_moved

warn_moved(__name__, "songbloom.checkpoints.formats.training")
