"""Streaming training data from preprocessed shards: resampled per rank and worker, cropped, bucketed, padded.

Training streams are *resampled* (each worker draws shards at random with its own seed), so no rank or worker
can run out of shards, whatever the shard count, and every rank yields exactly ``batches_per_epoch`` batches:
DDP never waits on a rank with fewer batches. Validation is finite and split by sample, padded by wrapping
so every rank gets the same number of batches. Nothing here encodes audio: shards already hold the latents.
"""

from __future__ import annotations

import logging
import multiprocessing
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader

from songbloom.data.shards import load_index
from songbloom.data.streams import (
    DataConfig,
    TrainShardStream,
    ValShardStream,
    collate,
    crop,
)
from songbloom.utils.ranks import rank_and_world

__all__ = ["DataConfig", "SongBloomDataModule", "TrainShardStream", "ValShardStream", "collate", "crop"]

logger = logging.getLogger(__name__)


# What a forkserver imports once, before forking workers: every worker then starts with the stream code and torch
# already imported, instead of importing them again (for every worker of every epoch) to unpickle its stream.
FORKSERVER_PRELOAD = ["__main__", "songbloom.data.streams"]


def worker_context(method: str) -> multiprocessing.context.BaseContext:
    """The multiprocessing context for DataLoader workers; a forkserver preloads :data:`FORKSERVER_PRELOAD`."""
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(FORKSERVER_PRELOAD)  # no effect once this process's forkserver runs
    return ctx


class EpochCounter:
    """The stream position shared by the datamodule (for its state) and its training loader.

    ``value`` is the epoch the next pass will stream, ``current`` the epoch of the pass in progress (None before
    the first), and ``resume`` = (epoch, batches consumed) makes the next pass of that epoch skip those batches.
    """

    def __init__(self, value: int = 0):
        self.value = value
        self.current: int | None = None
        self.resume: tuple[int, int] | None = None


class _EpochLoader(DataLoader):
    """DataLoader that hands the dataset a new epoch number on every pass (reseeding the stream), and after a
    resume the number of that epoch's batches to fast-forward past."""

    def __init__(self, *args, counter: EpochCounter, **kwargs):
        super().__init__(*args, **kwargs)
        self.counter = counter

    def __iter__(self):
        epoch = self.counter.value
        skip = 0
        if self.counter.resume is not None and self.counter.resume[0] == epoch:
            skip = self.counter.resume[1]
        self.counter.resume = None
        self.dataset.epoch = epoch
        self.dataset.skip_batches = skip
        self.counter.current = epoch
        self.counter.value += 1
        return super().__iter__()


class SongBloomDataModule(pl.LightningDataModule):
    """Shards -> padded training batches (see module docstring; batch keys in docs/data.md)."""

    def __init__(self, cfg: DataConfig | None = None, **overrides: Any):
        super().__init__()
        cfg = cfg or DataConfig()
        for k, v in overrides.items():
            if not hasattr(cfg, k):
                raise TypeError(f"unknown data option {k!r}")
            setattr(cfg, k, v)
        self.cfg = cfg
        self.index: dict[str, Any] | None = None
        self.epochs = EpochCounter(0)

    # ---------------------------------------------------------------- setup
    def _world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is not None:
            return trainer.global_rank, trainer.world_size
        return rank_and_world()

    def setup(self, stage: str | None = None) -> None:
        root = Path(self.cfg.shards_dir)
        self.index = load_index(root)
        prov = self.index.get("provenance") or {}
        pcfg = prov.get("config") or {}
        self.seconds_per_tag = float(self.cfg.seconds_per_tag or pcfg.get("seconds_per_tag", 1.0))
        self.eos_id = int(self.cfg.eos_id if self.cfg.eos_id is not None else prov.get("num_pitch", 16384))
        block = int(pcfg.get("block_size", self.cfg.block_size))
        if block != self.cfg.block_size:
            logger.warning("shards were segmented with block_size=%d, reading with %d", block, self.cfg.block_size)
        self.splits = {
            name: ([str(root / s["name"]) for s in d["shards"]], int(d["num_samples"]))
            for name, d in self.index["splits"].items()
        }
        rank, world = self._world()
        train_urls, n_train = self.splits.get("train", ([], 0))
        self.batches_per_epoch = self.cfg.batches_per_epoch or max(1, n_train // (self.cfg.batch_size * world))
        workers = max(1, self.cfg.num_workers)
        if train_urls and len(train_urls) < world * workers:
            logger.info(
                "%d training shards for %d ranks x %d workers: streams resample shards, so every worker "
                "still reads (possibly the same) shards",
                len(train_urls),
                world,
                workers,
            )

    def train_dataset(self) -> TrainShardStream:
        rank, world = self._world()
        urls, _ = self.splits.get("train", ([], 0))
        return TrainShardStream(urls, self.cfg, self.seconds_per_tag, self.eos_id, self.batches_per_epoch, rank, world)

    def val_dataset(self) -> ValShardStream:
        rank, world = self._world()
        urls, n = self.splits.get("val", ([], 0))
        return ValShardStream(urls, n, self.cfg, self.seconds_per_tag, self.eos_id, rank, world)

    # ---------------------------------------------------------------- loaders
    def _loader_kwargs(self, num_workers: int) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "batch_size": None,
            "num_workers": num_workers,
            "pin_memory": self.cfg.pin_memory,
            # A private generator: starting a pass must not draw from the global RNG that checkpoints capture
            # (the streams seed themselves from (seed, epoch, rank, worker)).
            "generator": torch.Generator().manual_seed(self.cfg.seed),
        }
        method = self.cfg.worker_start_method
        if method is None and torch.distributed.is_available() and torch.distributed.is_initialized():
            method = "forkserver"
        if num_workers > 0 and method is not None:
            kw["multiprocessing_context"] = worker_context(method)
        return kw

    def train_dataloader(self) -> DataLoader:
        return _EpochLoader(
            self.train_dataset(),
            persistent_workers=False,  # epochs reseed through a fresh dataset copy per pass
            counter=self.epochs,
            **self._loader_kwargs(self.cfg.num_workers),
        )

    def val_dataloader(self) -> DataLoader:
        n_val = self.splits.get("val", ([], 0))[1]
        return DataLoader(self.val_dataset(), **self._loader_kwargs(min(self.cfg.num_workers, max(1, n_val))))

    # ---------------------------------------------------------------- resume
    def _batches_consumed(self) -> int | None:
        """Training batches of the current pass that the trainer has processed (not what workers prefetched);
        None outside a fit."""
        trainer = self.trainer
        if trainer is None or trainer.state.fn != "fit" or self.epochs.current is None:
            return None  # (a save during a fit's validation still counts: the training epoch is in progress)
        return int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)

    def state_dict(self) -> dict[str, Any]:
        """Stream position: the epoch in progress and how many of its batches the trainer consumed (a resume
        fast-forwards past exactly those), or, outside a fit, the next epoch to stream from its start."""
        consumed = self._batches_consumed()
        if consumed is None:
            epoch, consumed = self.epochs.value, 0
        else:
            epoch = int(self.epochs.current)  # type: ignore[arg-type]
        rank, world = self._world()
        return {
            "epoch": epoch,
            "batches_consumed": consumed,
            "seed": self.cfg.seed,
            "num_workers": self.cfg.num_workers,
            "world_size": world,
            "config": asdict(self.cfg),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        epoch = int(state.get("epoch", 0))
        consumed = int(state.get("batches_consumed", 0))
        self.epochs.value = epoch
        self.epochs.resume = (epoch, consumed) if consumed > 0 else None
        if int(state.get("seed", self.cfg.seed)) != self.cfg.seed:
            logger.warning("resuming with data seed %s (checkpoint had %s)", self.cfg.seed, state.get("seed"))
        changed = [
            f"{k} {state[k]} -> {now}"
            for k, now in (("num_workers", self.cfg.num_workers), ("world_size", self._world()[1]))
            if k in state and int(state[k]) != int(now)
        ]
        if changed and consumed:
            logger.warning(
                "data stream resumes epoch %d after %d batches with %s: streams are per rank and worker, so the "
                "rest of this epoch differs from an uninterrupted run's",
                epoch,
                consumed,
                ", ".join(changed),
            )
        if consumed:
            logger.info("data stream resumes at epoch %d after %d consumed batches", epoch, consumed)
