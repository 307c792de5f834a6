"""Find the files of a released SongBloom model on disk, or fetch them from the Hugging Face Hub.

A release is five files beside a model YAML: the generator ``<name>.pt``, the VAE json and checkpoint and
the lyric vocabulary. The 240 s model lives in its own repository but shares the VAE and vocabulary of the
150 s repository, as in the official ``infer.py``. A local directory always wins over the Hub, and offline
runs never touch the network: they fail with the list of missing files and the command that fetches them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from songbloom.config import SongBloomConfig

logger = logging.getLogger(__name__)

SHARED_REPO = "CypressYang/SongBloom"
MODEL_REPOS: dict[str, str] = {
    "songbloom_full_150s": "CypressYang/SongBloom",
    "songbloom_full_150s_dpo": "CypressYang/SongBloom",
    "songbloom_full_240s": "CypressYang/SongBloom_long",
}
VAE_JSON = "stable_audio_1920_vae.json"
VAE_CKPT = "autoencoder_music_dsp1920.ckpt"
VOCAB = "vocab_g2p.yaml"

_TRUE_VALUES = {"1", "on", "yes", "true"}


class ReleaseFilesNotFoundError(FileNotFoundError):
    """Some release files are neither in the local directory nor (when offline) in the Hub cache."""


@dataclass(frozen=True)
class ReleaseFiles:
    """Absolute paths of one release. ``directory`` is the YAML's folder (where ``???`` points)."""

    name: str
    yaml: Path
    pt: Path
    vae_json: Path
    vae_ckpt: Path
    vocab: Path
    directory: Path

    def file_overrides(self) -> dict[str, Path]:
        """``???/<file>`` name -> real path, for files that are not beside the YAML (Hub cache snapshots)."""
        return {
            f"{self.name}.pt": self.pt,
            VAE_JSON: self.vae_json,
            VAE_CKPT: self.vae_ckpt,
            VOCAB: self.vocab,
        }

    def load_config(self) -> SongBloomConfig:
        """The release YAML as a :class:`SongBloomConfig` whose paths point at these files."""
        from songbloom.config import SongBloomConfig
        from songbloom.config.release_yaml import load_release_yaml

        raw = load_release_yaml(self.yaml, model_dir=self.directory, file_overrides=self.file_overrides())
        return SongBloomConfig.from_release_dict(raw)


def repo_for(name: str) -> str:
    """Hugging Face repository holding ``<name>.yaml`` and ``<name>.pt``."""
    try:
        return MODEL_REPOS[name]
    except KeyError:
        raise ValueError(f"unknown release {name!r}; choose from {sorted(MODEL_REPOS)}") from None


def release_file_plan(name: str) -> list[tuple[str, str, str]]:
    """``(field, repo_id, filename)`` for every file of release ``name``, in download order."""
    repo = repo_for(name)
    return [
        ("yaml", repo, f"{name}.yaml"),
        ("pt", repo, f"{name}.pt"),
        ("vae_json", SHARED_REPO, VAE_JSON),
        ("vae_ckpt", SHARED_REPO, VAE_CKPT),
        ("vocab", SHARED_REPO, VOCAB),
    ]


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` read now (huggingface_hub reads it once at import, tests and users set it later)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE_VALUES


def download_command(missing: list[tuple[str, str, str]], local_dir: str | Path | None) -> str:
    """Shell commands (one per repository) that fetch ``missing`` into ``local_dir``."""
    by_repo: dict[str, list[str]] = {}
    for _, repo, filename in missing:
        by_repo.setdefault(repo, []).append(filename)
    target = f" --local-dir {local_dir}" if local_dir is not None else ""
    return "\n".join(f"hf download {repo} {' '.join(files)}{target}" for repo, files in by_repo.items())


def resolve_release_files(
    name: str,
    local_dir: str | Path | None = None,
    *,
    local_only: bool = False,
    cache_dir: str | Path | None = None,
    revision: str | None = None,
    token: str | bool | None = None,
) -> ReleaseFiles:
    """Locate (and if needed download) every file of release ``name``.

    Files already in ``local_dir`` are used as they are. The others are downloaded into ``local_dir`` (or
    the Hub cache when ``local_dir`` is None); with ``local_only=True`` or ``HF_HUB_OFFLINE=1`` only the
    Hub cache is searched, and anything still missing raises :class:`ReleaseFilesNotFoundError` listing
    the files, their repositories and the download command.
    """
    plan = release_file_plan(name)
    offline = local_only or hub_offline()
    found: dict[str, Path] = {}
    missing: list[tuple[str, str, str]] = []
    for field_name, repo, filename in plan:
        if local_dir is not None and (Path(local_dir) / filename).is_file():
            found[field_name] = (Path(local_dir) / filename).resolve()
            continue
        path = _from_hub(repo, filename, local_dir, offline, cache_dir, revision, token)
        if path is None:
            missing.append((field_name, repo, filename))
        else:
            found[field_name] = path
    if missing:
        where = f"in {Path(local_dir).resolve()}" if local_dir is not None else "locally"
        why = "local_only=True" if local_only else "HF_HUB_OFFLINE is set"
        lines = [
            f"release {name!r}: {len(missing)} of {len(plan)} files not found {where} or in the Hub cache ({why}):"
        ]
        lines += [f"  - {filename} (repo {repo})" for _, repo, filename in missing]
        lines.append("fetch them with:")
        lines += ["  " + cmd for cmd in download_command(missing, local_dir).splitlines()]
        raise ReleaseFilesNotFoundError("\n".join(lines))
    logger.info("release %s: files in %s", name, found["yaml"].parent)
    return ReleaseFiles(name=name, directory=found["yaml"].parent, **found)


def _from_hub(
    repo: str,
    filename: str,
    local_dir: str | Path | None,
    offline: bool,
    cache_dir: str | Path | None,
    revision: str | None,
    token: str | bool | None,
) -> Path | None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    if offline:
        # Offline: only the shared Hub cache can still hold the file (local_dir was checked by the caller).
        try:
            path = hf_hub_download(
                repo, filename, cache_dir=cache_dir, revision=revision, token=token, local_files_only=True
            )
        except (LocalEntryNotFoundError, FileNotFoundError):
            return None
        return Path(path).resolve()
    logger.info("downloading %s from %s", filename, repo)
    try:
        path = hf_hub_download(repo, filename, local_dir=local_dir, cache_dir=cache_dir, revision=revision, token=token)
    except Exception as e:  # network, auth, disk: all end the same way for the user
        command = download_command([("", repo, filename)], local_dir)
        raise ReleaseFilesNotFoundError(
            f"could not download {filename} from {repo}: {type(e).__name__}: {e}\n"
            f"fetch it by hand with:\n  {command}\nor set HF_HUB_OFFLINE=1 to use local files only"
        ) from e
    return Path(path).resolve()
