"""Everything about the released SongBloom files: their YAML configs, where to find them, their key layout.

Checkpoint reading and writing lives in :mod:`songbloom.checkpoint`.
"""

from songbloom.release.files import (
    MODEL_REPOS,
    SHARED_REPO,
    ReleaseFiles,
    ReleaseFilesNotFoundError,
    release_file_plan,
    repo_for,
    resolve_release_files,
)
from songbloom.release.keys import KeyComparison, assert_keys_match, compare_keys, load_reference_keys, shapes_of
from songbloom.release.safe_eval import safe_arithmetic_eval
from songbloom.release.yaml_loader import load_release_yaml
from songbloom.release.yaml_writer import write_release_yaml

__all__ = [
    "MODEL_REPOS",
    "SHARED_REPO",
    "KeyComparison",
    "ReleaseFiles",
    "ReleaseFilesNotFoundError",
    "assert_keys_match",
    "compare_keys",
    "load_reference_keys",
    "load_release_yaml",
    "release_file_plan",
    "repo_for",
    "resolve_release_files",
    "safe_arithmetic_eval",
    "shapes_of",
    "write_release_yaml",
]
