"""The one place where evaluation reaches into the sampler: exported generators, VAEs and generated songs.

Everything else in :mod:`songbloom.eval` depends only on the model core, the VAE, MuQ and the text front end.
If the sampler's API moves, only this file changes. Reading a training run dir back is the training
package's job (:class:`songbloom.training.run_dir.RunDir`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from songbloom.checkpoints.vae import demo_vae
from songbloom.config import SongBloomConfig
from songbloom.models.songbloom import SongBloomModel

logger = logging.getLogger(__name__)

EXPORT_WEIGHTS = "generator.safetensors"
EXPORT_CONFIG = "config.json"


def load_exported_generator(export_dir: str | Path) -> tuple[SongBloomModel, SongBloomConfig]:
    """A training export (``generator.safetensors`` + ``config.json`` with a ``songbloom`` config), strictly."""
    from songbloom.checkpoints.formats.merged import load_merged_generator

    d = Path(export_dir)
    weights, cfg_path = d / EXPORT_WEIGHTS, d / EXPORT_CONFIG
    for p in (weights, cfg_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p} is missing: expected a training export folder ({EXPORT_WEIGHTS} + "
                                    f"{EXPORT_CONFIG}, written by train.py under <run dir>/export)")
    meta = json.loads(cfg_path.read_text(encoding="utf-8"))
    if "songbloom" not in meta:
        raise ValueError(f"{cfg_path}: no 'songbloom' config block; was it written by train.py's export?")
    sb_cfg = SongBloomConfig.from_dict(meta["songbloom"])
    return load_merged_generator(d, sb_cfg), sb_cfg


def load_vae_spec(spec: str | Path) -> nn.Module:
    """``"demo-tiny"`` for the demo VAE, else a VAE checkpoint path; its config is ``<stem>.json`` next to it, the
    release's ``stable_audio_1920_vae.json`` in its folder (a release folder), or the release VAE's."""
    if str(spec) == "demo-tiny":
        return demo_vae()
    from songbloom.checkpoints.keys import RELEASE_VAE_JSON
    from songbloom.checkpoints.vae import load_vae

    path = Path(spec)
    found = [p for p in (path.with_suffix(".json"), path.parent / RELEASE_VAE_JSON) if p.is_file()]
    return load_vae(found[0] if found else _release_vae_config(), path).eval()


def _release_vae_config():
    from songbloom.models.vae import VAEConfig

    return VAEConfig.release()


@dataclass
class SongSpec:
    """One song to generate: the same name, lyrics and seed are used for every compared model."""

    name: str
    lyric_ids: list[int]
    seed: int


def generate_songs(model: SongBloomModel, sb_cfg: SongBloomConfig, vae: nn.Module, songs: Sequence[SongSpec],
                   *, seconds: float) -> dict[str, tuple[torch.Tensor, int]]:
    """Generate with the sampler (``songbloom.inference``); returns name -> ``([C, T], sample_rate)``."""
    from songbloom.checkpoints.bundle import SongBloom
    from songbloom.inference.generate import SamplingParams
    from songbloom.inference.pipeline import SongBloomPipeline, SongRequest
    from songbloom.text.vocab import Vocabulary

    bundle = SongBloom(config=sb_cfg, model=model.eval(), vae=vae.eval(),
                       vocab=Vocabulary(list(sb_cfg.model.lyric_vocab)))
    params = SamplingParams.from_inference_config(sb_cfg.inference, max_frames=seconds * sb_cfg.frame_rate)
    pipeline = SongBloomPipeline(bundle, params)
    out: dict[str, tuple[torch.Tensor, int]] = {}
    for song in songs:  # one at a time: each song's seed alone decides its noise, whatever the batch
        result = pipeline.generate([SongRequest(song.name, list(song.lyric_ids), None, seed=song.seed)])[0]
        out[song.name] = (result.audio.float().cpu(), int(result.sample_rate))
    return out


def lyric_ids_from_text(lyrics: str, sb_cfg: SongBloomConfig, language: str | None = None) -> list[int]:
    """Lyrics text -> vocabulary ids, through the release front end (tags, G2P)."""
    from songbloom.text import process_lyrics
    from songbloom.text.vocab import Vocabulary

    tokenized = Vocabulary(list(sb_cfg.model.lyric_vocab)).tokenize(process_lyrics(lyrics, language=language))
    if tokenized.dropped:
        logger.warning("lyrics %r: %d symbols not in the vocabulary were dropped", lyrics[:40], len(tokenized.dropped))
    return list(tokenized.ids)


# ---------------------------------------------------------------------- run dirs of train.py
