"""Where the generator's weights come from, and which tensors train in full besides the adapters.

Sources: ``scratch`` (release init), ``release`` (official files through ``songbloom.release``, strict load
with a key report), ``export`` (a generator we exported: safetensors, or a release-layout ``.pt``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from songbloom.config import SongBloomConfig

logger = logging.getLogger(__name__)

RELEASE_TRAINED_LANGUAGES = ("zh", "en")
"""Languages whose lyric tokens the released checkpoints were trained on."""

FULL_SETS: dict[str, tuple[str, ...]] = {
    # A new sketch codebook changes what every id means: its embedding and the classifier must re-learn.
    "sketch_embedding": ("skeleton_emb.weight",),
    "sketch_classifier": ("skeleton_classifier.0.weight", "skeleton_classifier.2.weight", "skeleton_classifier.2.bias"),
    # Lyric tokens the release never saw (e.g. Japanese phonemes) have untrained rows.
    "lyric_embedding": ("condition_provider.conditioners.lyrics.output_proj.weight",),
}


@dataclass
class InitResult:
    config: SongBloomConfig
    state_dict: dict[str, torch.Tensor] | None
    source: str
    description: str


def _release_api():
    """The release dev's resolver and strict loader (``songbloom.release`` + ``songbloom.checkpoint``)."""
    from songbloom.checkpoint import load_release_state_dict, split_release_state_dict
    from songbloom.release.files import resolve_release_files

    return resolve_release_files, load_release_state_dict, split_release_state_dict


def resolve_init(init_cfg: Mapping[str, Any], preset_cfg: SongBloomConfig) -> InitResult:
    """Read the weights named by ``init_cfg`` (not yet loaded into a model)."""
    source = str(init_cfg.get("source", "scratch"))
    if source == "scratch":
        return InitResult(preset_cfg, None, source, "random init (release scheme)")
    if source == "release":
        resolve_release_files, load_release_state_dict, split_release_state_dict = _release_api()
        name = str(init_cfg["release_name"])
        files = resolve_release_files(
            name, init_cfg.get("release_dir"), local_only=bool(init_cfg.get("local_only", True))
        )
        cfg = files.load_config()
        sd, _vae, report = split_release_state_dict(load_release_state_dict(files.pt), require_vae=False)
        logger.info("release %s: %d generator tensors from %s (%s)", name, len(sd), files.pt, report)
        return InitResult(cfg, sd, source, f"release {name} ({files.pt})")
    if source == "export":
        path = Path(str(init_cfg["export_path"]))
        if not path.is_file():
            raise FileNotFoundError(f"init.export_path={path} does not exist (an exported generator .safetensors/.pt)")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            _, load_release_state_dict, split_release_state_dict = _release_api()
            sd, _vae, _ = split_release_state_dict(load_release_state_dict(path), require_vae=False)
        cfg = preset_cfg
        config_json = path.with_name("config.json")
        if config_json.is_file():
            import json

            cfg = SongBloomConfig.from_dict(json.loads(config_json.read_text())["songbloom"])
        return InitResult(cfg, sd, source, f"export {path}")
    raise ValueError(f"init.source={source!r}: choose scratch, release or export")


def load_generator_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor], what: str) -> None:
    """Strict load with a readable report of missing, unexpected and mis-shaped keys."""
    from songbloom.checkpoint import strict_load

    strict_load(model, state_dict, what=what)


def declared_full_sets(
    trainable_cfg: Mapping[str, Any], *, source: str, new_codebook: bool, language: str | None
) -> list[str]:
    """Names of the :data:`FULL_SETS` that train in full, resolving ``auto`` entries.

    ``sketch_embedding: auto`` covers the embedding and the classifier and is on whenever the sketch codebook
    is not the one the weights were trained with (always true for release weights: their codebook is
    unreleased). ``lyric_embedding: auto`` is on when the data language is one the release never trained.
    """
    sets = []
    sketch = trainable_cfg.get("sketch_embedding", "auto")
    if sketch == "auto":
        sketch = source == "release" or new_codebook
    if sketch:
        sets += ["sketch_embedding", "sketch_classifier"]
    lyric = trainable_cfg.get("lyric_embedding", "auto")
    if lyric == "auto":
        lyric = language is not None and language not in RELEASE_TRAINED_LANGUAGES
    if lyric:
        sets.append("lyric_embedding")
    return sets


def mark_full_sets(model: nn.Module, sets: list[str], extra_regex: str | None = None) -> list[str]:
    """Unfreeze the tensors of ``sets`` (plus names full-matching ``extra_regex``); returns their names."""
    params = dict(model.named_parameters())
    names = []
    for s in sets:
        for n in FULL_SETS[s]:
            if n not in params:
                raise KeyError(f"trainable set {s!r}: parameter {n} not found in the model")
            names.append(n)
    if extra_regex:
        pattern = re.compile(extra_regex)
        hits = [n for n in params if pattern.fullmatch(n)]
        if not hits:
            raise ValueError(f"trainable.extra_regex={extra_regex!r} matches no parameter")
        names += hits
    for n in names:
        params[n].requires_grad_(True)
    return sorted(set(names))
