"""The user's own songs for choosing the switch bonus: audio only, framed as the corpus frames its generations.

Why real songs: a probe fitted on the base model's renders is less sure of itself on real audio, so a switch bonus
chosen on held-out generations switches by another amount on the songs that get tokenised (see
:func:`songbloom.sketch.recovery.fit.calibrate_switching`). The songs need no lyrics and no base model: the corpus
plan gives the VAE's sample rate and patch size, and MuQ reads the mono mix at that rate, as the corpus did. The
file is the ``--heldout`` format (``audio`` or ``audio_path`` per line; other fields are ignored here), so a
training manifest or the report's held-out file works as it is.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from songbloom.sketch.alignment import num_vae_frames
from songbloom.sketch.features import MuQFeatureExtractor, to_mono
from songbloom.sketch.recovery.heldout import HeldoutItem, read_audio, read_heldout
from songbloom.utils.provenance import path_fingerprint

logger = logging.getLogger(__name__)

FLAG = "--calibration-songs"


@dataclass
class CalibrationSongs:
    """The usable lines of a calibration file, their identity (what decides the features) and what was skipped."""

    path: Path
    items: list[HeldoutItem]
    identity: str
    skipped: list[str] = field(default_factory=list)


def read_calibration_songs(path: str | Path, max_seconds: float | None = None) -> CalibrationSongs:
    """Parse the file and fingerprint its audio (cheap: no audio decoded); bad lines are skipped and named."""
    path = Path(path)
    items, problems = read_heldout(path, flag=FLAG, need_lyrics=False)
    body = {"songs": sorted((i.name, path_fingerprint(i.audio)) for i in items), "max_seconds": max_seconds}
    identity = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:20]
    return CalibrationSongs(path, items, identity, [str(p) for p in problems])


@torch.no_grad()
def calibration_features(songs: CalibrationSongs, extractor: MuQFeatureExtractor, layers: Sequence[int], *,
                         sample_rate: int, block_size: int, max_seconds: float | None = None,
                         feature_dtype: torch.dtype = torch.float16) -> dict[int, list[torch.Tensor]]:
    """Per layer, ``[F_i, D]`` float32 features of each usable song (whole patches, rounded through
    ``feature_dtype`` as the corpus stores them). Unreadable songs join ``songs.skipped``; none usable raises."""
    layers = extractor.check_layers(layers)
    out: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
    used = 0
    for item in songs.items:
        try:
            wav = read_audio(item.audio, sample_rate, max_seconds)
            frames = num_vae_frames(wav.shape[-1], sample_rate) // block_size * block_size
            if frames == 0:
                raise ValueError(f"{item.audio}: shorter than one patch ({block_size} frames); give a longer song")
        except ValueError as e:
            songs.skipped.append(f"{songs.path}:{item.line} (idx {item.name}): {e}")
            logger.error("%s song skipped: %s", FLAG, songs.skipped[-1])
            continue
        feats = extractor.extract_many_layers([to_mono(wav)], sample_rate, layers)[0][:frames]  # [F, L, D]
        feats = feats.to(feature_dtype).float()
        for j, layer in enumerate(layers):
            out[layer].append(feats[:, j].contiguous())
        used += 1
    if used == 0:
        raise ValueError(f"{FLAG} {songs.path}: no usable song ({len(songs.skipped)} skipped):\n  - "
                         + "\n  - ".join(songs.skipped or ["the file has no lines"]))
    logger.info("%s %s: %d song(s), %d frames, %d skipped", FLAG, songs.path, used,
                sum(int(f.shape[0]) for f in out[layers[0]]), len(songs.skipped))
    return out
