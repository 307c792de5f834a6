"""Deprecated alias of songbloom.building.trainable (and neighbours); see docs/migration.md."""

from songbloom.building.model import InitResult  # noqa: E402, F401
from songbloom.building.trainable import (  # noqa: E402, F401
    FULL_SETS,
    RELEASE_TRAINED_LANGUAGES,
    declared_full_sets,
    mark_full_sets,
)
from songbloom.checkpoints.init_weights import resolve_init  # noqa: E402, F401
from songbloom.checkpoints.strict import strict_load as load_generator_weights  # noqa: E402, F401
from songbloom.config.model import SongBloomConfig  # noqa: E402, F401
from songbloom.utils.deprecation import warn_moved

warn_moved(__name__, "songbloom.building.trainable")
