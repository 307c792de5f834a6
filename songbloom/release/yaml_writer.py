"""Deprecated alias of songbloom.checkpoints.release_yaml_writer (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.release_yaml_writer import (  # noqa: E402, F401
    MODEL_DIR_PLACEHOLDER,
    dynamic_path,
    write_release_yaml,
)
from songbloom.utils.atomic import atomic_write_text  # noqa: E402, F401
from songbloom.utils.deprecation import warn_moved

warn_moved(__name__, "songbloom.checkpoints.release_yaml_writer")
