"""Deprecated alias of songbloom.building.trainable (and neighbours); see docs/migration.md."""

from songbloom.building.model import InitResult
from songbloom.building.trainable import FULL_SETS, RELEASE_TRAINED_LANGUAGES, declared_full_sets, mark_full_sets
from songbloom.checkpoints.init_weights import resolve_init
from songbloom.checkpoints.strict import strict_load as load_generator_weights
from songbloom.config.model import SongBloomConfig
from songbloom.utils.deprecation import warn_moved

__all__ = [
    "FULL_SETS",
    "InitResult",
    "RELEASE_TRAINED_LANGUAGES",
    "SongBloomConfig",
    "declared_full_sets",
    "load_generator_weights",
    "mark_full_sets",
    "resolve_init",
]

warn_moved(__name__, "songbloom.building.trainable")
