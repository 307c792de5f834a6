"""Deprecated alias of songbloom.checkpoints.release_files (and neighbours); see docs/migration.md."""

from songbloom.checkpoints import keys  # noqa: E402, F401
from songbloom.checkpoints.release_files import (  # noqa: E402, F401
    MODEL_REPOS,
    SHARED_REPO,
    ReleaseFiles,
    ReleaseFilesNotFoundError,
    release_file_plan,
    repo_for,
    resolve_release_files,
)
from songbloom.checkpoints.release_keys import (  # noqa: E402, F401
    KeyComparison,
    assert_keys_match,
    compare_keys,
    load_reference_keys,
    shapes_of,
)
from songbloom.checkpoints.release_yaml_writer import write_release_yaml  # noqa: E402, F401
from songbloom.config import safe_eval  # noqa: E402, F401
from songbloom.config.release_yaml import load_release_yaml  # noqa: E402, F401
from songbloom.config.safe_eval import safe_arithmetic_eval  # noqa: E402, F401
from songbloom.utils.deprecation import warn_moved

warn_moved(__name__, "songbloom.checkpoints.release_files")
