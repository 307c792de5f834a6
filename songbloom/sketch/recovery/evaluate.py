"""What a set of sketch ids is worth to a base model: its teacher-forced AR and flow losses, and id statistics.

Every id set of a comparison is scored on the same songs with the same flow noise and timesteps, so the flow
losses differ only by what the ids tell the DiT. AR loss is the cross-entropy of the base LM over the ids (EOS
included, as in training); flow loss is the DiT's velocity MSE averaged over patches.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from songbloom.models.songbloom import SongBloomModel


@dataclass
class EvalSong:
    """One held-out song: its latents ``[C, F]``, lyric ids and prompt latents ``[C, Fp]`` (or None)."""

    latents: torch.Tensor
    lyric_ids: list[int] | torch.Tensor
    prompt_latents: torch.Tensor | None = None


@dataclass
class TeacherForcedLoss:
    ar: float
    flow: float
    frames: int

    def as_dict(self) -> dict[str, float]:
        return {"ar": self.ar, "flow": self.flow, "frames": float(self.frames)}


@torch.no_grad()
def teacher_forced_losses(
    model: SongBloomModel,
    songs: Sequence[EvalSong],
    id_sets: Mapping[str, Sequence[torch.Tensor]],
    *,
    seed: int = 0,
    batch_size: int = 8,
) -> dict[str, TeacherForcedLoss]:
    """Loss of each id set (per song ``[F_i]`` ids, same lengths as the songs' latents) under ``model``.

    Songs are cut to whole patches. Noise and timesteps are drawn once per batch from ``seed`` and reused for
    every id set; condition dropout is off (``model.eval()``), as at inference.
    """
    was_training = model.training
    model.eval()
    p = model.cfg.block_size
    dev = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    for name, ids in id_sets.items():
        if len(ids) != len(songs):
            raise ValueError(f"id set {name!r} has {len(ids)} songs, the evaluation {len(songs)}")
    sums = {name: [0.0, 0.0, 0, 0] for name in id_sets}  # ar sum, flow sum, ar targets, patches
    gen = torch.Generator().manual_seed(seed)
    for start in range(0, len(songs), batch_size):
        rows = list(range(start, min(start + batch_size, len(songs))))
        lengths = [songs[i].latents.shape[-1] // p * p for i in rows]
        if min(lengths) == 0:
            raise ValueError(f"songs {rows} include one shorter than a patch ({p} frames)")
        t_max = max(lengths)
        lat = torch.zeros(len(rows), songs[rows[0]].latents.shape[0], t_max)
        for j, i in enumerate(rows):
            lat[j, :, : lengths[j]] = songs[i].latents[:, : lengths[j]].float()
        x_len = torch.tensor(lengths)
        n_patches = int(sum(lengths) // p)
        t = torch.rand(n_patches, generator=gen)
        noise = torch.randn(n_patches, p, lat.shape[1], generator=gen)
        cond = _conditions(model, [songs[i] for i in rows], dev, dtype)
        for name, ids in id_sets.items():
            sketch = torch.full((len(rows), t_max), model.eos_id, dtype=torch.long)
            for j, i in enumerate(rows):
                if ids[i].shape[0] < lengths[j]:
                    raise ValueError(f"id set {name!r}: song {i} has {ids[i].shape[0]} ids for {lengths[j]} frames")
                sketch[j, : lengths[j]] = ids[i][: lengths[j]].long()
            out = model(sketch.to(dev), lat.to(dev, dtype), x_len.to(dev), cond,
                        noise=noise.to(dev, dtype), t=t.to(dev))
            logits = out.ar_logit.float()
            ar = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), out.ar_target.reshape(-1),
                                 ignore_index=model.special_id, reduction="sum")
            flow = (out.nar_pred.float() - out.nar_target.float()).pow(2).mean(dim=(1, 2)).sum()
            acc = sums[name]
            acc[0] += float(ar)
            acc[1] += float(flow)
            acc[2] += int((out.ar_target != model.special_id).sum())
            acc[3] += int(out.nar_pred.shape[0])
    model.train(was_training)
    return {name: TeacherForcedLoss(a / max(1, n), f / max(1, m), n) for name, (a, f, n, m) in sums.items()}


def _conditions(model: SongBloomModel, songs: Sequence[EvalSong], dev: torch.device, dtype: torch.dtype):
    lyric_ids = [torch.as_tensor(s.lyric_ids, dtype=torch.long, device=dev) for s in songs]
    prompts = [s.prompt_latents for s in songs]
    if all(pr is None for pr in prompts):
        return model.encode_conditions(lyric_ids, None)
    width = max(pr.shape[-1] for pr in prompts if pr is not None)
    c = model.cfg.latent_dim
    batch = torch.zeros(len(songs), c, width)
    lengths = torch.zeros(len(songs))
    for j, pr in enumerate(prompts):
        if pr is not None:
            batch[j, :, : pr.shape[-1]] = pr.float()
            lengths[j] = pr.shape[-1]
    return model.encode_conditions(lyric_ids, batch.to(dev, dtype), lengths.to(dev), width)


# ------------------------------------------------------------------------------------------------ id statistics
def unigram_entropy(ids: Sequence[torch.Tensor], num_codes: int) -> float:
    """Entropy (nats) of the pooled code frequencies."""
    counts = torch.bincount(torch.cat([i.long() for i in ids]), minlength=num_codes).float()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum())


def agreement(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    hits = sum(int((x.long() == y.long()).sum()) for x, y in zip(a, b, strict=True))
    return hits / max(1, sum(x.numel() for x in a))


def most_frequent_code_rate(ids: Sequence[torch.Tensor], num_codes: int) -> float:
    """Agreement of the best constant guess: the frequency of the commonest code."""
    counts = torch.bincount(torch.cat([i.long() for i in ids]), minlength=num_codes)
    return float(counts.max()) / max(1, int(counts.sum()))


def matched_agreement(
    pred: Sequence[torch.Tensor], truth: Sequence[torch.Tensor], num_pred: int, num_truth: int
) -> float:
    """Agreement after the best one-to-one relabelling of ``pred`` codes (Hungarian matching on co-occurrence),
    the fair score for a codebook whose code numbers mean nothing (a fresh k-means)."""
    from scipy.optimize import linear_sum_assignment

    p = torch.cat([x.long() for x in pred])
    t = torch.cat([x.long() for x in truth])
    co = torch.zeros(num_pred, num_truth, dtype=torch.float64)
    co.index_put_((p, t), torch.ones_like(p, dtype=torch.float64), accumulate=True)
    rows, cols = linear_sum_assignment(co.numpy(), maximize=True)
    return float(co[rows, cols].sum()) / max(1, p.numel())


def ar_information(model_ce: float, ids: Sequence[torch.Tensor], num_codes: int) -> float:
    """Nats per frame the model predicts beyond the ids' own unigram distribution (unigram entropy - CE)."""
    return unigram_entropy(ids, num_codes) - model_ce


def gap_closed(perm: float, recovered: float, hidden: float) -> float:
    """``(perm - recovered) / (perm - hidden)``: 1 when recovered ids are as good as the truth, 0 when as bad
    as ids with no alignment; NaN when the truth is no better than the permutation (an invalid comparison)."""
    denom = perm - hidden
    return (perm - recovered) / denom if denom > 0 else math.nan
