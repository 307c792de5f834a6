"""Deprecated alias of songbloom.checkpoints.formats.fork (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.fork_file import ForkCheckpoint, read_fork_checkpoint  # noqa: E402, F401
from songbloom.checkpoints.fork_key_mapping import MappingReport, map_fork_state_dict  # noqa: E402, F401
from songbloom.checkpoints.formats.fork import (  # noqa: E402, F401
    REPORT_SUFFIX,
    UNKNOWN,
    ForkModel,
    config_from_hparams,
    convert_fork_checkpoint,
    fork_licences,
    fork_lora_alpha,
    fork_settings,
    load_fork_checkpoint,
    map_fork_checkpoint,
)
from songbloom.checkpoints.release_state import save_release_checkpoint  # noqa: E402, F401
from songbloom.checkpoints.strict import CheckpointMismatchError, strict_load  # noqa: E402, F401
from songbloom.config.model import SongBloomConfig  # noqa: E402, F401
from songbloom.licences import licence_record, merge_licences, warn_if_non_commercial  # noqa: E402, F401
from songbloom.models.songbloom import SongBloomModel  # noqa: E402, F401
from songbloom.models.vae import OobleckVAE, VAEConfig  # noqa: E402, F401
from songbloom.utils.atomic import atomic_write  # noqa: E402, F401
from songbloom.utils.deprecation import warn_moved

warn_moved(__name__, "songbloom.checkpoints.formats.fork")
