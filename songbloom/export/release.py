"""Deprecated alias of songbloom.checkpoints.formats.release (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.formats.merged import check_plain as _check_plain  # noqa: E402, F401
from songbloom.checkpoints.formats.release import (  # noqa: E402, F401
    RELEASE_VAE_CKPT as VAE_CKPT,
)
from songbloom.checkpoints.metadata import export_metadata  # noqa: E402, F401
from songbloom.checkpoints.release_state import save_release_checkpoint  # noqa: E402, F401
from songbloom.config.model import SongBloomConfig  # noqa: E402, F401
from songbloom.models.songbloom import SongBloomModel  # noqa: E402, F401
from songbloom.models.vae import OobleckVAE  # noqa: E402, F401
from songbloom.utils.atomic import atomic_write, atomic_write_text  # noqa: E402, F401
from songbloom.utils.deprecation import warn_moved

warn_moved(__name__, "songbloom.checkpoints.formats.release")
