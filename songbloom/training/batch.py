"""The batch the training module consumes, and the one place that adapts data-pipeline batches to it.

Keeping the adaptation here means a change in the data pipeline's collate output is a one-line change in
:func:`as_training_batch`, never a change in the LightningModule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from songbloom.models.vae import posterior_std


@dataclass
class TrainingBatch:
    """One collated batch of pre-encoded songs.

    Frames are latent frames at the VAE rate (25 Hz for the release); ``lengths`` are multiples of the
    model's ``block_size``; past ``lengths`` the sketch is EOS-padded and latents are zero.
    """

    sketch: torch.Tensor  # (B, T) long
    latents: torch.Tensor  # (B, latent_dim, T) float
    lengths: torch.Tensor  # (B,) long
    lyric_ids: list[torch.Tensor]  # per row, lyric vocabulary ids
    prompt_latents: torch.Tensor | None  # (B, latent_dim, Fp) or None (all-null prompts)
    prompt_lengths: torch.Tensor | None  # (B,) valid prompt frames per row
    frame_rate: float = 25.0
    keys: list[str] | None = None

    @property
    def batch_size(self) -> int:
        return int(self.sketch.shape[0])

    @property
    def audio_seconds(self) -> float:
        return float(self.lengths.sum()) / self.frame_rate

    def to(self, device: torch.device | str) -> TrainingBatch:
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return TrainingBatch(
            sketch=move(self.sketch),
            latents=move(self.latents),
            lengths=move(self.lengths),
            lyric_ids=[ids.to(device) for ids in self.lyric_ids],
            prompt_latents=move(self.prompt_latents),
            prompt_lengths=move(self.prompt_lengths),
            frame_rate=self.frame_rate,
            keys=self.keys,
        )


def collate_songs(
    samples: Sequence[Mapping[str, Any]], *, block_size: int, eos_id: int, frame_rate: float = 25.0
) -> TrainingBatch:
    """Collate per-song dicts (``sketch`` (F,), ``latents`` (D, F), ``lyric_ids`` (L,), optional
    ``prompt_latents`` (D, Fp)) into a :class:`TrainingBatch`.

    Each song is cut down to a whole number of blocks (at most ``block_size - 1`` trailing frames, which the
    model cannot represent); a song shorter than one block is an error, not a silent drop.
    """
    if not samples:
        raise ValueError("collate_songs got an empty batch")
    rows = []
    for i, s in enumerate(samples):
        sketch = torch.as_tensor(s["sketch"]).long().reshape(-1)
        latents = torch.as_tensor(s["latents"]).float()
        if latents.shape[-1] != sketch.shape[0]:
            raise ValueError(
                f"sample {s.get('key', i)}: sketch has {sketch.shape[0]} frames but latents {latents.shape[-1]}; "
                "re-run preprocessing (sketch tokens must align with VAE frames)"
            )
        n = (sketch.shape[0] // block_size) * block_size
        if n == 0:
            raise ValueError(
                f"sample {s.get('key', i)}: {sketch.shape[0]} frames is shorter than one block ({block_size})"
            )
        rows.append((sketch[:n], latents[:, :n]))
    t_max = max(r[0].shape[0] for r in rows)
    dim = rows[0][1].shape[0]
    b = len(rows)
    sketch = torch.full((b, t_max), eos_id, dtype=torch.long)
    latents = torch.zeros(b, dim, t_max)
    lengths = torch.zeros(b, dtype=torch.long)
    for i, (sk, la) in enumerate(rows):
        n = sk.shape[0]
        sketch[i, :n], latents[i, :, :n], lengths[i] = sk, la, n
    lyric_ids = [torch.as_tensor(s["lyric_ids"]).long().reshape(-1) for s in samples]
    prompts = [s.get("prompt_latents") for s in samples]
    prompt_latents = prompt_lengths = None
    if any(p is not None for p in prompts):
        p_max = max(torch.as_tensor(p).shape[-1] for p in prompts if p is not None)
        prompt_latents = torch.zeros(b, dim, p_max)
        prompt_lengths = torch.zeros(b, dtype=torch.long)
        for i, p in enumerate(prompts):
            if p is not None:
                p = torch.as_tensor(p).float()
                prompt_latents[i, :, : p.shape[-1]] = p
                prompt_lengths[i] = p.shape[-1]
    return TrainingBatch(
        sketch=sketch,
        latents=latents,
        lengths=lengths,
        lyric_ids=lyric_ids,
        prompt_latents=prompt_latents,
        prompt_lengths=prompt_lengths,
        frame_rate=frame_rate,
        keys=[str(s.get("key", i)) for i, s in enumerate(samples)],
    )


def as_training_batch(batch: Any, *, sample_latents: bool = False, frame_rate: float = 25.0) -> TrainingBatch:
    """Accept what a datamodule yields: a :class:`TrainingBatch` or a mapping.

    The data pipeline's collate output (``songbloom.data.datamodule.collate``: ``x_sketch``, ``x_latent``
    (VAE mean), ``x_latent_scale``, ``x_len``, ``prompt_latent``, ``prompt_len``, ``lyric_ids``) is adapted
    here and only here. With ``sample_latents`` the stored VAE moments are sampled afresh each step
    (``mean + posterior_std(scale) * noise``, from the global RNG that resume restores), as the release VAE's
    ``encode`` does. Shards store the VAE's pre-softplus scale: adding ``scale * noise`` (negative scales of
    about -5 for the release VAE) would bury the latents in noise.
    """
    if isinstance(batch, TrainingBatch):
        return batch
    if not isinstance(batch, Mapping):
        raise TypeError(f"cannot turn a {type(batch).__name__} into a TrainingBatch")
    aliases = {
        "x_sketch": "sketch",
        "x_latent": "latents",
        "x_len": "lengths",
        "prompt_latent": "prompt_latents",
        "prompt_len": "prompt_lengths",
        "key": "keys",
    }
    f = {aliases.get(k, k): v for k, v in batch.items()}
    latents = f["latents"]
    if sample_latents and f.get("x_latent_scale") is not None:
        latents = latents + posterior_std(f["x_latent_scale"]) * torch.randn(latents.shape, device=latents.device)
    prompt = f.get("prompt_latents")
    if sample_latents and prompt is not None and f.get("prompt_latent_scale") is not None:
        prompt = prompt + posterior_std(f["prompt_latent_scale"]) * torch.randn(prompt.shape, device=prompt.device)
    lyric = f["lyric_ids"]
    if isinstance(lyric, torch.Tensor) and lyric.dim() == 2:
        lens = f.get("lyric_len")
        lyric = [row[: int(lens[i])] if lens is not None else row for i, row in enumerate(lyric)]
    lyric = [torch.as_tensor(ids, dtype=torch.long, device=f["sketch"].device) for ids in lyric]
    return TrainingBatch(
        sketch=f["sketch"],
        latents=latents,
        lengths=f["lengths"],
        lyric_ids=lyric,
        prompt_latents=prompt,
        prompt_lengths=f.get("prompt_lengths"),
        frame_rate=float(f.get("frame_rate", frame_rate)),
        keys=f.get("keys"),
    )
