"""Deprecated alias of songbloom.checkpoints.release_state (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.release_state import (  # noqa: E402, F401
    SplitReport,
    load_release_state_dict,
    read_release_checkpoint,
    save_release_checkpoint,
    split_release_state_dict,
)
from songbloom.checkpoints.safe_load import check_tensors as _check_tensors  # noqa: E402, F401
from songbloom.checkpoints.strict import (  # noqa: E402, F401
    GENERATOR_PREFIX,
    LEGACY_VAE_PREFIX,
    VAE_PREFIX,
    CheckpointMismatchError,
    format_mismatch_report,
    state_dict_mismatches,
    strict_load,
)
from songbloom.checkpoints.vae import VAE_KEY_ROOTS, load_vae_checkpoint  # noqa: E402, F401
from songbloom.utils.atomic import atomic_write  # noqa: E402, F401
from songbloom.utils.deprecation import warn_moved

warn_moved(__name__, "songbloom.checkpoints.release_state")
