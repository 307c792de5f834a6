"""Training and validation streams over preprocessed shards: what DataLoader workers run.

Kept apart from the Lightning datamodule so that a worker process started by ``spawn`` or ``forkserver``
imports only torch, numpy and webdataset to unpickle its stream (importing Lightning in every worker of every
epoch took minutes on a busy machine; see :mod:`songbloom.data.datamodule`). Training streams are resampled
per rank and worker and cut into exactly ``batches_per_epoch`` batches per rank; validation is finite and
split by sample.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from songbloom.data.lyrics import TokenSection, window_lyric_ids
from songbloom.data.shards import decode_sample, iter_tar_samples
from songbloom.utils.processes import exit_with_owner
from songbloom.utils.ranks import rank_and_world

logger = logging.getLogger(__name__)


@dataclass
class DataConfig:
    """Reading knobs. ``None`` fields are taken from the shard index (its provenance) at setup."""

    shards_dir: str = "data/shards"
    batch_size: int = 4
    val_batch_size: int | None = None
    num_workers: int = 2
    max_frames: int = 3750  # crop length in latent frames (150 s at 25 Hz); rounded down to block_size
    block_size: int = 16
    seconds_per_tag: float | None = None
    eos_id: int | None = None  # x_sketch padding; the model's eos id (= num_pitch)
    prompt_max_len: int = 250
    shuffle_buffer: int = 32
    bucket_batches: int = 4  # length bucketing: sort this many batches' worth of samples by length
    batches_per_epoch: int | None = None  # per rank; default: train samples // (batch_size * world_size)
    seed: int = 0
    pin_memory: bool = False
    # Worker start method. None: "forkserver" once torch.distributed is initialised (forking a process that runs
    # gloo/NCCL threads can deadlock the worker), else the platform default.
    worker_start_method: str | None = None


def _damaged_shard(exn: Exception) -> bool:
    logger.warning("damaged shard data skipped: %s: %s", type(exn).__name__, exn)
    return True


def crop(
    sample: dict[str, Any], max_frames: int, block_size: int, seconds_per_tag: float, rng: np.random.Generator | None
) -> dict[str, Any] | None:
    """Cut a block-aligned window (random start with ``rng``, else the start) with the lyrics sung inside it."""
    meta = sample["meta"]
    frames = int(sample["latent_mean"].shape[-1])
    length = min(frames, max_frames) // block_size * block_size
    if length <= 0:
        logger.warning("%s: %d frames is shorter than one block; sample skipped", meta.get("key"), frames)
        return None
    starts = (frames - length) // block_size + 1
    start = int(rng.integers(starts)) * block_size if rng is not None else 0
    if meta.get("sections") is not None:
        fps = float(meta["frame_rate"])
        sections = [TokenSection.from_json(s) for s in meta["sections"]]
        ids = window_lyric_ids(sections, start / fps, (start + length) / fps, seconds_per_tag, meta["separator_ids"])
    else:
        ids = sample["lyric_ids"].tolist()
    return {
        "latent_mean": sample["latent_mean"][:, start : start + length],
        "latent_scale": sample["latent_scale"][:, start : start + length],
        "sketch": sample["sketch"][start : start + length],
        "lyric_ids": ids,
        "prompt_mean": sample["prompt_mean"],
        "prompt_scale": sample["prompt_scale"],
        "idx": meta["idx"],
        "key": meta["key"],
        "crop_start": start,
    }


def collate(items: Sequence[dict[str, Any]], eos_id: int, prompt_max_len: int) -> dict[str, Any]:
    """Pad cropped samples into a batch (see docs/data.md for keys and shapes)."""
    b = len(items)
    d = items[0]["latent_mean"].shape[0]
    lens = [it["latent_mean"].shape[-1] for it in items]
    t = max(lens)
    x_latent = torch.zeros(b, d, t)
    x_scale = torch.zeros(b, d, t)
    x_sketch = torch.full((b, t), eos_id, dtype=torch.long)
    p_mean = torch.zeros(b, d, prompt_max_len)
    p_scale = torch.zeros(b, d, prompt_max_len)
    p_len = torch.zeros(b, dtype=torch.long)
    for i, it in enumerate(items):
        n = lens[i]
        x_latent[i, :, :n] = torch.from_numpy(np.asarray(it["latent_mean"], dtype=np.float32))
        x_scale[i, :, :n] = torch.from_numpy(np.asarray(it["latent_scale"], dtype=np.float32))
        x_sketch[i, :n] = torch.from_numpy(np.asarray(it["sketch"], dtype=np.int64))
        pm = np.asarray(it["prompt_mean"], dtype=np.float32)[:, :prompt_max_len]
        p_mean[i, :, : pm.shape[-1]] = torch.from_numpy(pm)
        p_scale[i, :, : pm.shape[-1]] = torch.from_numpy(
            np.asarray(it["prompt_scale"], dtype=np.float32)[:, :prompt_max_len]
        )
        p_len[i] = pm.shape[-1]
    return {
        "x_latent": x_latent,
        "x_latent_scale": x_scale,
        "x_sketch": x_sketch,
        "x_len": torch.tensor(lens, dtype=torch.long),
        "prompt_latent": p_mean,
        "prompt_latent_scale": p_scale,
        "prompt_len": p_len,
        "lyric_ids": [list(it["lyric_ids"]) for it in items],
        "lyric_len": torch.tensor([len(it["lyric_ids"]) for it in items], dtype=torch.long),
        "idx": [it["idx"] for it in items],
        "key": [it["key"] for it in items],
        "crop_start": torch.tensor([it["crop_start"] for it in items], dtype=torch.long),
    }


class TrainShardStream(IterableDataset):
    """Endless resampled stream cut into exactly ``batches_per_epoch`` batches per rank (per epoch)."""

    def __init__(
        self,
        urls: Sequence[str],
        cfg: DataConfig,
        seconds_per_tag: float,
        eos_id: int,
        batches_per_epoch: int,
        rank: int | None = None,
        world_size: int | None = None,
    ):
        super().__init__()
        if not urls:
            raise ValueError(f"no training shards in {cfg.shards_dir}")
        self.urls = list(urls)
        self.cfg = cfg
        self.seconds_per_tag = seconds_per_tag
        self.eos_id = eos_id
        self.batches_per_epoch = batches_per_epoch
        self.rank, self.world_size = rank, world_size
        self.owner_pid = os.getpid()  # the process that builds the loader (the rank); workers watch it
        self.epoch = 0
        self.skip_batches = 0  # batches of this epoch (all workers) the trainer consumed before a resume

    def _samples(self, rng: np.random.Generator) -> Iterator[dict[str, Any]]:
        empty_draws = 0
        while True:
            url = self.urls[int(rng.integers(len(self.urls)))]
            got = 0
            for raw in iter_tar_samples([url], handler=_damaged_shard):
                try:
                    sample = decode_sample(raw)
                except Exception as e:
                    logger.warning("%s: undecodable sample %s skipped (%s)", url, raw.get("__key__"), e)
                    continue
                got += 1
                yield sample
            empty_draws = 0 if got else empty_draws + 1
            if empty_draws > 20 * len(self.urls):
                raise RuntimeError(f"no readable samples in {len(self.urls)} shards (first: {self.urls[0]})")

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rank, world = (self.rank, self.world_size) if self.rank is not None else rank_and_world()
        info = get_worker_info()
        if info is not None:
            exit_with_owner(self.owner_pid)
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        skip = min(max(0, int(self.skip_batches)), self.batches_per_epoch)
        # Batch j of an epoch comes from stream ("role") j % nw: the DataLoader asks its workers round-robin. A
        # resumed pass starts at batch ``skip``, which the loader asks of worker 0, so workers rotate roles.
        role = (wid + skip) % nw
        n_batches = self.batches_per_epoch // nw + (1 if role < self.batches_per_epoch % nw else 0)
        done = skip // nw + (1 if role < skip % nw else 0)  # this role's batches the trainer already consumed
        if n_batches - done <= 0:
            return
        if done:
            logger.info(
                "epoch %d, rank %d, stream %d: fast-forwarding past %d consumed batches", self.epoch, rank, role, done
            )
        rng = np.random.default_rng([self.cfg.seed, self.epoch, rank, role])
        for i, items in enumerate(self._batch_items(rng, n_batches)):
            if i >= done:  # consumed batches are drawn (same RNG use) but not collated
                yield collate(items, self.eos_id, self.cfg.prompt_max_len)

    def _batch_items(self, rng: np.random.Generator, n_batches: int) -> Iterator[list[dict[str, Any]]]:
        """The stream's first ``n_batches`` batches (lists of cropped samples): shuffle buffer, then buckets."""
        bs = self.cfg.batch_size
        shuffle: list[dict[str, Any]] = []
        bucket: list[dict[str, Any]] = []
        emitted = 0
        for sample in self._samples(rng):
            item = crop(sample, self.cfg.max_frames, self.cfg.block_size, self.seconds_per_tag, rng)
            if item is None:
                continue
            if len(shuffle) < self.cfg.shuffle_buffer:
                shuffle.append(item)
                continue
            j = int(rng.integers(len(shuffle)))
            item, shuffle[j] = shuffle[j], item
            bucket.append(item)
            if len(bucket) < bs * max(1, self.cfg.bucket_batches):
                continue
            bucket.sort(key=lambda x: x["latent_mean"].shape[-1])
            batches = [bucket[i : i + bs] for i in range(0, len(bucket) - bs + 1, bs)]
            bucket = bucket[len(batches) * bs :]
            for k in rng.permutation(len(batches)):
                yield batches[k]
                emitted += 1
                if emitted >= n_batches:
                    return


class ValShardStream(IterableDataset):
    """Finite validation pass, split by sample across ranks and workers, with equal batch counts per rank."""

    def __init__(
        self,
        urls: Sequence[str],
        num_samples: int,
        cfg: DataConfig,
        seconds_per_tag: float,
        eos_id: int,
        rank: int | None = None,
        world_size: int | None = None,
    ):
        super().__init__()
        self.urls = sorted(urls)
        self.num_samples = num_samples
        self.cfg = cfg
        self.seconds_per_tag = seconds_per_tag
        self.eos_id = eos_id
        self.rank, self.world_size = rank, world_size
        self.owner_pid = os.getpid()  # the process that builds the loader (the rank); workers watch it

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rank, world = (self.rank, self.world_size) if self.rank is not None else rank_and_world()
        info = get_worker_info()
        if info is not None:
            exit_with_owner(self.owner_pid)
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        n = self.num_samples
        if n == 0:
            return
        per_rank = math.ceil(n / world)
        # global slots 0..per_rank*world-1; slot s holds sample s % n (wrapping pads the last ranks)
        my_slots = [s for s in range(rank, per_rank * world, world)]
        my_slots = my_slots[wid::nw]
        want: dict[int, int] = {}
        for s in my_slots:
            want[s % n] = want.get(s % n, 0) + 1
        bs = self.cfg.val_batch_size or self.cfg.batch_size
        buf: list[dict[str, Any]] = []
        ordinal = -1
        for raw in iter_tar_samples(self.urls, handler=_damaged_shard):
            ordinal += 1
            if ordinal not in want:
                continue
            item = crop(decode_sample(raw), self.cfg.max_frames, self.cfg.block_size, self.seconds_per_tag, None)
            for _ in range(want[ordinal] if item is not None else 0):
                buf.append(item)
                if len(buf) == bs:
                    yield collate(buf, self.eos_id, self.cfg.prompt_max_len)
                    buf = []
        if buf:
            yield collate(buf, self.eos_id, self.cfg.prompt_max_len)
