"""Deprecated alias of songbloom.checkpoints.release_files (and neighbours); see docs/migration.md."""

from songbloom.checkpoints import keys
from songbloom.checkpoints.release_files import (
    MODEL_REPOS,
    SHARED_REPO,
    ReleaseFiles,
    ReleaseFilesNotFoundError,
    release_file_plan,
    repo_for,
    resolve_release_files,
)
from songbloom.checkpoints.release_keys import (
    KeyComparison,
    assert_keys_match,
    compare_keys,
    load_reference_keys,
    shapes_of,
)
from songbloom.checkpoints.release_yaml_writer import write_release_yaml
from songbloom.config import safe_eval
from songbloom.config.release_yaml import load_release_yaml
from songbloom.config.safe_eval import safe_arithmetic_eval
from songbloom.utils.deprecation import warn_moved

__all__ = [
    "KeyComparison",
    "MODEL_REPOS",
    "ReleaseFiles",
    "ReleaseFilesNotFoundError",
    "SHARED_REPO",
    "assert_keys_match",
    "compare_keys",
    "keys",
    "load_reference_keys",
    "load_release_yaml",
    "release_file_plan",
    "repo_for",
    "resolve_release_files",
    "safe_arithmetic_eval",
    "safe_eval",
    "shapes_of",
    "write_release_yaml",
]

warn_moved(__name__, "songbloom.checkpoints.release_files")
