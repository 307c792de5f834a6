"""Deterministic, resumable batch order for map-style datasets.

The order of epoch ``e`` is a permutation drawn from ``seed + e`` alone, so a resumed run can rebuild it and
skip the batches the interrupted run already trained on. The count of consumed batches comes from the
trainer's loop progress at checkpoint time (not from the loader, which prefetches ahead).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ResumableBatchSampler(Sampler[list[int]]):
    """Shuffled, fixed-size batches (the incomplete tail is dropped) in a seed-and-epoch-determined order."""

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ):
        if num_items < batch_size * world_size:
            raise ValueError(
                f"{num_items} items cannot fill one batch of {batch_size} on each of {world_size} ranks; "
                "add data or lower data.batch_size"
            )
        self.num_items = num_items
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self._skip: tuple[int, int] | None = None  # (epoch, batches to skip) set by a resume

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def resume_at(self, epoch: int, batches_consumed: int) -> None:
        """Start the next iteration at ``epoch``, after its first ``batches_consumed`` batches."""
        self.epoch = int(epoch)
        self._skip = (int(epoch), int(batches_consumed))

    def __len__(self) -> int:
        return self.num_items // (self.batch_size * self.world_size)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + 7919 * epoch)
            order = torch.randperm(self.num_items, generator=g).tolist()
        else:
            order = list(range(self.num_items))
        per_step = self.batch_size * self.world_size
        batches = []
        for i in range(len(self)):
            chunk = order[i * per_step : (i + 1) * per_step]
            batches.append(chunk[self.rank * self.batch_size : (self.rank + 1) * self.batch_size])
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.epoch_batches(self.epoch)
        start = 0
        if self._skip is not None and self._skip[0] == self.epoch:
            start = self._skip[1]
        self._skip = None
        yield from batches[start:]
