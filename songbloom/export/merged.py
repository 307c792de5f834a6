"""Deprecated alias of songbloom.checkpoints.formats.merged (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.formats.merged import (  # noqa: E402, F401
    check_plain as _check_plain,
)
from songbloom.checkpoints.keys import GENERATOR_FILE, VAE_CONFIG_FILE, VAE_FILE  # noqa: E402, F401
from songbloom.checkpoints.metadata import export_metadata  # noqa: E402, F401
from songbloom.config.model import SongBloomConfig  # noqa: E402, F401
from songbloom.models.songbloom import SongBloomModel  # noqa: E402, F401
from songbloom.models.vae import OobleckVAE  # noqa: E402, F401
from songbloom.training.export import ADAPTER_FILE, CONFIG_FILE, export_generator, trained_copy  # noqa: E402, F401
from songbloom.utils.atomic import atomic_write, atomic_write_text  # noqa: E402, F401
from songbloom.utils.deprecation import warn_moved

warn_moved(__name__, "songbloom.checkpoints.formats.merged")
