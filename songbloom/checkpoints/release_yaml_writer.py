"""Write a :class:`~songbloom.config.SongBloomConfig` as a release-layout YAML directory.

The result is what the official ``infer.py`` expects next to a checkpoint: every file is named through
``${dynamic_path:???/<name>}`` and the lyric vocabulary through ``${load_yaml:...}``, so exports made here
load with the official code and with :func:`songbloom.config.release_yaml.load_release_yaml` alike.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from songbloom.config.release_yaml import MODEL_DIR_PLACEHOLDER
from songbloom.utils.atomic import atomic_write_text

if TYPE_CHECKING:
    from songbloom.config import SongBloomConfig

logger = logging.getLogger(__name__)


class _ReleaseDumper(yaml.SafeDumper):
    """Indents list items under their key, like the release files."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _write_or_check(path: Path, text: str, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        if path.read_text(encoding="utf-8") == text:
            return
        raise FileExistsError(f"{path} exists with different content; pass overwrite=True to replace it")
    atomic_write_text(path, text)


def dynamic_path(filename: str) -> str:
    """The release placeholder for a file that sits next to the YAML (``${dynamic_path:???/<filename>}``)."""
    return "${dynamic_path:" + MODEL_DIR_PLACEHOLDER + "/" + filename + "}"


def write_release_yaml(
    cfg: SongBloomConfig,
    directory: str | Path,
    *,
    yaml_name: str = "songbloom.yaml",
    pt_name: str = "songbloom.pt",
    vae_json_name: str = "stable_audio_1920_vae.json",
    vae_ckpt_name: str = "autoencoder_music_dsp1920.ckpt",
    vocab_name: str = "vocab_g2p.yaml",
    write_vocab: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write ``cfg`` as a release-layout YAML that the official loader (and :func:`load_release_yaml`) reads.

    Every file is referenced as ``${dynamic_path:???/<name>}``, so the directory can be moved as a whole.
    With ``write_vocab`` the lyric vocabulary of ``cfg`` is written to ``vocab_name`` as well; the
    checkpoint and VAE files are the caller's to put there. Existing files with other content are left
    alone (FileExistsError) unless ``overwrite``.

    Returns:
        The path of the written YAML.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    release = cfg.to_release_dict()
    release["pretrained_path"] = dynamic_path(pt_name)
    release["vae"]["vae_cfg"] = dynamic_path(vae_json_name)
    release["vae"]["vae_ckpt"] = dynamic_path(vae_ckpt_name)
    release["model"]["condition_provider_cfg"]["lyrics"]["vocab_list"] = "${load_yaml:" + dynamic_path(vocab_name) + "}"
    if write_vocab:
        vocab_text = yaml.dump(list(cfg.model.lyric_vocab), Dumper=_ReleaseDumper, allow_unicode=False)
        _write_or_check(directory / vocab_name, vocab_text, overwrite)
    yaml_text = yaml.dump(release, Dumper=_ReleaseDumper, sort_keys=False, allow_unicode=False)
    out = directory / yaml_name
    _write_or_check(out, yaml_text, overwrite)
    logger.info("wrote release config %s (checkpoint %s, vocabulary %s)", out, pt_name, vocab_name)
    return out
