"""One proxy scenario: the world, its MuQ, the hidden tokenizer, and the songs with their hidden ids.

Everything the recovery must not see lives here (the hidden tokenizer's folder is deleted by the caller before
recovery starts). ``independent_ids`` builds the negative control: each song gets the hidden ids of another
song, so the ids keep their statistics but say nothing about the song's audio.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from songbloom.proxy.hidden import HiddenTokenizer, choose_layer, fit_hidden_tokenizer
from songbloom.proxy.muq import proxy_muq
from songbloom.proxy.world import HOP, SAMPLE_RATE, Song, SongWorld, WorldSettings
from songbloom.sketch import MuQFeatureExtractor
from songbloom.sketch.muq_backbone import muq_layer_count
from songbloom.text.lyric_policy import encode_lyrics
from songbloom.text.vocab import Vocabulary

logger = logging.getLogger(__name__)


@dataclass
class Scenario:
    world: SongWorld
    muq: torch.nn.Module
    muq_dir: Path
    hidden: HiddenTokenizer
    hidden_dir: Path
    teacher_songs: list[Song]
    heldout_songs: list[Song]
    independent_ids: bool

    @property
    def num_codes(self) -> int:
        return self.hidden.num_codes


def all_layer_features(muq: torch.nn.Module, audio: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """MuQ features of every layer, ``[L, F, D]`` per clip, from one forward per window."""
    ext = MuQFeatureExtractor(muq, layers=tuple(range(muq_layer_count(muq))))
    return [f.transpose(0, 1).contiguous() for f in ext.extract_many_layers(list(audio), SAMPLE_RATE)]


QUIET_NOISE_DB = -70.0  # white noise this far below a song's level is far below anything a codebook should hear


def hidden_stability(muq: torch.nn.Module, hidden: HiddenTokenizer, audio: Sequence[torch.Tensor],
                     features: Sequence[torch.Tensor], seed: int, noise_db: float = QUIET_NOISE_DB) -> float:
    """Share of hidden ids unchanged when white noise ``noise_db`` below each clip's level is added.

    ``features[i]`` are the all-layer MuQ features of ``audio[i]``. The proxy is only valid if the hidden ids
    follow what is audible: ids decided by rounding noise (as with an almost empty spectrum) can be rendered by
    no model and recovered by no tokenizer.
    """
    gen = torch.Generator().manual_seed(seed)
    scale = 10 ** (noise_db / 20)
    noisy = [a + scale * float(a.std()) * torch.randn(a.shape, generator=gen) for a in audio]
    return unchanged_share(muq, hidden, features, noisy)


def unchanged_share(muq: torch.nn.Module, hidden: HiddenTokenizer, features: Sequence[torch.Tensor],
                    changed_audio: Sequence[torch.Tensor], frames: int | None = None) -> float:
    """Share of the hidden ids of ``features`` (first ``frames`` per clip; all if None) that ``changed_audio``
    gives again."""
    layer = hidden.layer
    before = [hidden.ids(f[layer][:frames]) for f in features]
    after = [hidden.ids(f[layer][:frames]) for f in all_layer_features(muq, changed_audio)]
    return sum(int((a == b).sum()) for a, b in zip(before, after, strict=True)) / sum(a.numel() for a in before)


LOCALITY_GUARD_FRAMES = 20  # 0.8 s: beyond MuQ's convolutions (about +-0.6 s), within reach of its attention


def hidden_locality(muq: torch.nn.Module, hidden: HiddenTokenizer, audio: Sequence[torch.Tensor],
                    features: Sequence[torch.Tensor], guard_frames: int = LOCALITY_GUARD_FRAMES) -> float:
    """Share of hidden ids unchanged when the sound from ``guard_frames`` after them onwards is replaced.

    Clip i keeps its first half and takes the second half of clip i + 1; the ids of the frames more than
    ``guard_frames`` before the join are compared with clip i's own. ``features[i]`` are the all-layer MuQ
    features of ``audio[i]``. The proxy is only valid if this is high: an id decided by sound seconds away cannot
    be rendered patch by patch, so the teacher's generations could not carry their own ids
    (:mod:`songbloom.proxy.muq`).
    """
    if len(audio) < 2:
        raise ValueError("hidden_locality needs at least 2 clips (each borrows the next one's second half)")
    frames = min(a.shape[-1] for a in audio) // HOP
    join = frames // 2
    kept = join - guard_frames
    if kept <= 0:
        raise ValueError(f"clips of {frames} frames are too short for a {guard_frames}-frame guard")
    spliced = [torch.cat([a[: join * HOP], audio[(i + 1) % len(audio)][join * HOP : frames * HOP]])
               for i, a in enumerate(audio)]
    return unchanged_share(muq, hidden, features, spliced, kept)


def attach_features(muq: torch.nn.Module, songs: Sequence[Song]) -> None:
    for song, feats in zip(songs, all_layer_features(muq, [s.audio for s in songs]), strict=True):
        song.extra["features"] = feats


def attach_lyric_ids(songs: Sequence[Song], vocab: Vocabulary, max_len: int) -> None:
    for song in songs:
        song.extra["lyric_ids"] = encode_lyrics(song.lyrics, vocab, max_len, language="zh")[0]


def build_scenario(work: Path, *, seed: int, num_codes: int, teacher_songs: int, heldout_songs: int,
                   song_frames: int, independent_ids: bool, vocab: Vocabulary, lyric_max_len: int) -> Scenario:
    """The world of ``seed``, the proxy MuQ (:mod:`songbloom.proxy.muq`) saved under ``work`` and the hidden
    tokenizer fitted on it.

    The world keeps its own size (:class:`WorldSettings`' notes) whatever ``num_codes`` is: music does not know the
    size of the codebook that will cut it up, and the release's 16384 codes are far more than any song's notes.
    """
    world = SongWorld(WorldSettings(seed=seed, song_frames=song_frames))
    muq_dir = work / "tiny_muq"
    muq = proxy_muq(seed + 1, muq_dir)
    teacher = world.songs("teacher_", teacher_songs, world.teacher_styles, seed * 10 + 1)
    heldout = world.songs("heldout_", heldout_songs, world.teacher_styles, seed * 10 + 2)
    attach_features(muq, teacher + heldout)
    attach_lyric_ids(teacher + heldout, vocab, lyric_max_len)
    layer = choose_layer(muq, seed)
    hidden = fit_hidden_tokenizer([s.extra["features"][layer] for s in teacher], layer, num_codes, seed)
    hidden_dir = hidden.save(work / "hidden_tokenizer")
    for s in teacher + heldout:
        s.ids = hidden.ids(s.extra["features"][layer])
    if independent_ids:
        shuffle_ids(teacher)
        shuffle_ids(heldout)
    logger.info("proxy world seed %d: %d codes, hidden tokenizer on MuQ layer %d (%s ids)", seed, num_codes, layer,
                "independent" if independent_ids else "audio")
    return Scenario(world, muq, muq_dir, hidden, hidden_dir, teacher, heldout, independent_ids)


def shuffle_ids(songs: Sequence[Song]) -> None:
    """Give song i the ids of song i + 1 (same lengths, same statistics, unrelated audio)."""
    ids = [s.ids for s in songs]
    for i, s in enumerate(songs):
        s.ids = ids[(i + 1) % len(ids)].clone()
