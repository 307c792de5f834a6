"""An in-memory synthetic song dataset with learnable structure, for tests, benchmarks and offline debugging.

Songs are generated from their index alone (so any worker rebuilds the same item), with structure a tiny
model can learn in a few hundred steps: sketch tokens follow one fixed random permutation (with 10% random
jumps), latent frames are a fixed random embedding of their sketch token plus noise, and the lyric ids and
prompt are derived from the song's first token. Real data goes through ``songbloom.data``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from songbloom.config import ModelConfig
from songbloom.training.batch import collate_songs
from songbloom.training.resumable import ResumableBatchSampler

logger = logging.getLogger(__name__)


@dataclass
class SyntheticSpec:
    num_songs: int = 64
    min_frames: int = 32
    max_frames: int = 64
    prompt_frames: int = 8
    lyric_len: int = 12
    jump_prob: float = 0.1
    noise_std: float = 0.1
    seed: int = 0


class SyntheticSongs(Dataset):
    """Deterministic songs keyed by index; see the module docstring for their structure."""

    def __init__(self, model_cfg: ModelConfig, spec: SyntheticSpec):
        self.spec = spec
        self.num_pitch = model_cfg.num_pitch
        self.latent_dim = model_cfg.latent_dim
        self.vocab_size = len(model_cfg.lyric_vocab)
        g = torch.Generator().manual_seed(spec.seed)
        self.successor = torch.randperm(self.num_pitch, generator=g)
        self.code_latents = torch.randn(self.num_pitch, self.latent_dim, generator=g)

    def __len__(self) -> int:
        return self.spec.num_songs

    def __getitem__(self, index: int) -> dict[str, Any]:
        s = self.spec
        g = torch.Generator().manual_seed(s.seed * 1_000_003 + int(index) + 1)
        n = int(torch.randint(s.min_frames, s.max_frames + 1, (1,), generator=g))
        tokens = torch.empty(n, dtype=torch.long)
        tokens[0] = int(torch.randint(self.num_pitch, (1,), generator=g))
        jumps = torch.rand(n, generator=g) < s.jump_prob
        random_codes = torch.randint(self.num_pitch, (n,), generator=g)
        for i in range(1, n):
            tokens[i] = random_codes[i] if jumps[i] else self.successor[tokens[i - 1]]
        latents = self.code_latents[tokens].T + s.noise_std * torch.randn(self.latent_dim, n, generator=g)
        first = int(tokens[0])
        lyric = 1 + (first + torch.arange(s.lyric_len)) % (self.vocab_size - 1)
        prompt = self.code_latents[self.successor[first]][:, None].expand(-1, s.prompt_frames).clone()
        return {
            "key": f"synthetic-{index:05d}",
            "sketch": tokens,
            "latents": latents,
            "lyric_ids": lyric,
            "prompt_latents": prompt,
        }


class SyntheticSongDataModule(L.LightningDataModule):
    """Lightning wrapper with a resumable batch order (its position is saved in every checkpoint)."""

    def __init__(
        self,
        model_cfg: ModelConfig,
        spec: SyntheticSpec | None = None,
        *,
        batch_size: int = 4,
        num_workers: int = 0,
        val_songs: int = 8,
        frame_rate: float = 25.0,
    ):
        super().__init__()
        self.model_cfg = model_cfg
        self.spec = spec or SyntheticSpec()
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_songs = val_songs
        self.frame_rate = frame_rate
        self.train_set = SyntheticSongs(model_cfg, self.spec)
        val_spec = SyntheticSpec(**{**self.spec.__dict__, "num_songs": val_songs, "seed": self.spec.seed + 10_000})
        self.val_set = SyntheticSongs(model_cfg, val_spec)
        self.sampler = ResumableBatchSampler(len(self.train_set), batch_size, seed=self.spec.seed)

    def _collate(self, samples):
        return collate_songs(
            samples, block_size=self.model_cfg.block_size, eos_id=self.model_cfg.eos_id, frame_rate=self.frame_rate
        )

    def setup(self, stage: str | None = None) -> None:
        if self.trainer is not None and self.trainer.world_size > 1:
            self.sampler.rank, self.sampler.world_size = self.trainer.global_rank, self.trainer.world_size

    def train_dataloader(self) -> DataLoader:
        # A private generator keeps loader start-up from consuming the global RNG (which resume restores).
        return DataLoader(
            self.train_set,
            batch_sampler=self.sampler,
            num_workers=self.num_workers,
            collate_fn=self._collate,
            generator=torch.Generator().manual_seed(0),
            persistent_workers=False,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            self.val_set, batch_size=self.batch_size, shuffle=False, num_workers=0, collate_fn=self._collate
        )

    def state_dict(self) -> dict[str, Any]:
        trainer = self.trainer
        if trainer is None:
            return {}
        progress = trainer.fit_loop.epoch_loop.batch_progress.current
        return {"epoch": int(trainer.current_epoch), "batches_consumed": int(progress.processed)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.sampler.resume_at(state["epoch"], state["batches_consumed"])
            logger.info("data stream resumes at epoch %d after %d batches", state["epoch"], state["batches_consumed"])
