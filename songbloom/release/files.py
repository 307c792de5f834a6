"""Deprecated alias of songbloom.checkpoints.release_files (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.formats.fork import RELEASE_VAE_JSON as VAE_JSON
from songbloom.checkpoints.formats.fork import RELEASE_VOCAB as VOCAB
from songbloom.checkpoints.formats.release import RELEASE_VAE_CKPT as VAE_CKPT
from songbloom.checkpoints.release_files import (
    MODEL_REPOS,
    SHARED_REPO,
    ReleaseFiles,
    ReleaseFilesNotFoundError,
    download_command,
    hub_offline,
    release_file_plan,
    repo_for,
    resolve_release_files,
)
from songbloom.utils.deprecation import warn_moved

__all__ = [
    "MODEL_REPOS",
    "ReleaseFiles",
    "ReleaseFilesNotFoundError",
    "SHARED_REPO",
    "VAE_CKPT",
    "VAE_JSON",
    "VOCAB",
    "download_command",
    "hub_offline",
    "release_file_plan",
    "repo_for",
    "resolve_release_files",
]

warn_moved(__name__, "songbloom.checkpoints.release_files")
