"""Deprecated alias of songbloom.checkpoints.release_state (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.release_state import (
    SplitReport,
    load_release_state_dict,
    read_release_checkpoint,
    save_release_checkpoint,
    split_release_state_dict,
)
from songbloom.checkpoints.safe_load import check_tensors as _check_tensors
from songbloom.checkpoints.safe_load import torch_load_safely
from songbloom.checkpoints.strict import (
    GENERATOR_PREFIX,
    LEGACY_VAE_PREFIX,
    VAE_PREFIX,
    CheckpointMismatchError,
    format_mismatch_report,
    state_dict_mismatches,
    strict_load,
)
from songbloom.checkpoints.vae import VAE_KEY_ROOTS, load_vae_checkpoint
from songbloom.utils.atomic import atomic_write
from songbloom.utils.deprecation import warn_moved

__all__ = [
    "CheckpointMismatchError",
    "GENERATOR_PREFIX",
    "LEGACY_VAE_PREFIX",
    "SplitReport",
    "VAE_KEY_ROOTS",
    "VAE_PREFIX",
    "_check_tensors",
    "atomic_write",
    "format_mismatch_report",
    "load_release_state_dict",
    "load_vae_checkpoint",
    "read_release_checkpoint",
    "save_release_checkpoint",
    "split_release_state_dict",
    "state_dict_mismatches",
    "strict_load",
    "torch_load_safely",
]

warn_moved(__name__, "songbloom.checkpoints.release_state")
