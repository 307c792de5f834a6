"""Deprecated alias of songbloom.checkpoints.release_yaml_writer (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.release_yaml_writer import MODEL_DIR_PLACEHOLDER, dynamic_path, write_release_yaml
from songbloom.utils.atomic import atomic_write_text
from songbloom.utils.deprecation import warn_moved

__all__ = [
    "MODEL_DIR_PLACEHOLDER",
    "atomic_write_text",
    "dynamic_path",
    "write_release_yaml",
]

warn_moved(__name__, "songbloom.checkpoints.release_yaml_writer")
