"""The fixed demo set: configured items, else songs borrowed from the validation data, else built-in lyrics."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import lightning as L
import torch

from songbloom.config import SongBloomConfig
from songbloom.training.demo_settings import BUILTIN_LYRICS, DemoAudioSettings, DemoItem

logger = logging.getLogger(__name__)


def build_demo_items(
    settings: DemoAudioSettings, sb_cfg: SongBloomConfig, trainer: L.Trainer | Any, vae: Callable[[], Any]
) -> list[DemoItem]:
    """The demo set; ``vae()`` gives the VAE that encodes a configured prompt (called only when one is given)."""
    from songbloom.text.vocab import Vocabulary

    vocab = Vocabulary(list(sb_cfg.model.lyric_vocab))
    items = [configured_item(i, dict(spec), vocab, settings, sb_cfg, vae) for i, spec in enumerate(settings.items)]
    if not items:
        items = validation_items(trainer, vocab, settings)
    if not items:
        for i, text in enumerate(BUILTIN_LYRICS[: max(1, settings.num_items)]):
            items.append(DemoItem(i, vocab.tokenize(text).ids, text, settings.seed + i))
    return items


def configured_item(
    i: int,
    spec: dict[str, Any],
    vocab,
    settings: DemoAudioSettings,
    sb_cfg: SongBloomConfig,
    vae: Callable[[], Any],
) -> DemoItem:
    unknown = sorted(set(spec) - {"lyrics", "language", "processed", "prompt", "seed"})
    if unknown or "lyrics" not in spec:
        raise ValueError(f"callbacks.demo_audio.items[{i}]: needs 'lyrics'; optional language, processed, "
                         f"prompt, seed (unknown keys {unknown})")
    text = str(spec["lyrics"])
    if not spec.get("processed", False):
        from songbloom.text.g2p import process_lyrics

        text = process_lyrics(text, language=spec.get("language"))
    tok = vocab.tokenize(text)
    if tok.dropped:
        logger.warning("demo item %d: %d lyric items not in the vocabulary were dropped: %s", i,
                       len(tok.dropped), tok.dropped[:10])
    prompt = None
    if spec.get("prompt"):
        from songbloom.inference.prompt import load_prompt_audio, prompt_moments

        wav = load_prompt_audio(spec["prompt"], sb_cfg.sr, sb_cfg.prompt_len)
        prompt = prompt_moments(vae(), wav)
    return DemoItem(i, tok.ids, str(spec["lyrics"]), int(spec.get("seed", settings.seed + i)), prompt)


def validation_items(trainer: L.Trainer | Any, vocab, settings: DemoAudioSettings) -> list[DemoItem]:
    """Up to ``num_items`` songs of the validation data: their lyric ids and prompt latents (RNG untouched)."""
    dm = getattr(trainer, "datamodule", None)
    if dm is None or not hasattr(dm, "val_dataloader"):
        return []
    with torch.random.fork_rng(devices=[]):
        try:
            loader = dm.val_dataloader()
        except Exception as e:
            logger.info("demo audio: no validation data to borrow lyrics from (%s)", e)
            return []
        items: list[DemoItem] = []
        for batch in loader:
            _add_batch_items(items, batch, vocab, settings)
            if len(items) >= settings.num_items:
                break
    return items


def _add_batch_items(items: list[DemoItem], batch: Any, vocab, settings: DemoAudioSettings) -> None:
    from songbloom.inference.prompt import PromptMoments
    from songbloom.training.batch import as_training_batch

    b = as_training_batch(batch)
    for r in range(b.batch_size):
        if len(items) >= settings.num_items:
            return
        ids = b.lyric_ids[r].tolist()
        prompt = None
        if b.prompt_latents is not None:
            n = int(b.prompt_lengths[r]) if b.prompt_lengths is not None else b.prompt_latents.shape[-1]
            if n > 0:
                lat = b.prompt_latents[r : r + 1, :, :n].float().cpu()
                prompt = PromptMoments(lat, torch.full_like(lat, -20.0))  # the mean, ~no spread
        text = " ".join(vocab.items[i] for i in ids if 0 < i < len(vocab))
        items.append(DemoItem(len(items), ids, text, settings.seed + len(items), prompt))
