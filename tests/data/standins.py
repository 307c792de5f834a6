"""Deterministic stand-ins for the VAE and the sketch tokenizer (same geometry: 48 kHz, hop 1920)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from songbloom.data.encoders import Encoders, PhonemeLyricsProcessor, module_fingerprint

HOP = 1920


class ToyVAE:
    """A strided conv: [B, C, T] -> mean/scale [B, D, T // 1920]; mono is repeated to 2 channels."""

    sample_rate = 48000
    downsampling_ratio = HOP

    def __init__(self, latent_dim: int = 8, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.conv = torch.nn.Conv1d(2, 2 * latent_dim, kernel_size=HOP, stride=HOP)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g) * 0.02)
            self.conv.bias.zero_()
        self.fingerprint = "toy:" + module_fingerprint(self.conv)[:16]
        self.calls = 0

    @torch.no_grad()
    def encode_moments(self, wav: torch.Tensor):
        self.calls += 1
        if wav.shape[1] == 1:
            wav = wav.repeat(1, 2, 1)
        mean, raw = self.conv(wav.float()).chunk(2, dim=1)
        return mean, F.softplus(raw) + 1e-4


class ToySketch:
    """Frame energy quantised to ``num_codes`` levels: T // 1920 ids per clip."""

    codebook_hash = "toy-sketch-v1"

    def __init__(self, num_codes: int = 64, codebook_hash: str | None = None):
        self.num_codes = num_codes
        if codebook_hash is not None:  # standing in for a real codebook file (write_toy_codebook)
            self.codebook_hash = codebook_hash

    def tokenize(self, wav: torch.Tensor, sr: int) -> torch.Tensor:
        wav = wav.reshape(1, -1) if wav.dim() == 1 else wav
        frames = wav.shape[-1] // HOP
        rms = wav[:, : frames * HOP].reshape(wav.shape[0], frames, HOP).pow(2).mean(-1).sqrt()
        return (rms * 4 * self.num_codes).long().clamp(0, self.num_codes - 1)


def write_toy_codebook(path, num_codes: int = 64) -> str:
    """A real (random) codebook artifact for the toy sketch codes to stand in for: give its hash to
    ``ToySketch(codebook_hash=...)`` so the shards record it, as shards tokenised with that codebook would."""
    from songbloom.sketch.artifact import SketchCodebook, build_metadata, save_codebook

    centers = torch.randn(num_codes, 4, generator=torch.Generator().manual_seed(0))
    mean, std = torch.zeros(4), torch.ones(4)
    meta = build_metadata(centers=centers, mean=mean, std=std, muq_model_id="toy", muq_fingerprint="toy",
                          muq_layer=1, muq_licence="CC-BY-NC-4.0", feature_normalisation="standardize")
    save_codebook(path, SketchCodebook(centers=centers, mean=mean, std=std, metadata=meta))
    return meta["codebook_hash"]


def toy_encoders(policy: str = "error", num_codes: int = 64, sketch: bool = True) -> Encoders:
    """Picklable factory (module level) so preprocessing can build encoders in worker processes."""
    return Encoders(
        latent=ToyVAE(), lyrics=PhonemeLyricsProcessor(policy=policy), sketch=ToySketch(num_codes) if sketch else None
    )


# Preprocessing settings of the session's synthetic shards (tests that resume them must use the same ones).
SHARD_KW = dict(segment_seconds=6.0, val_fraction=0.34, split_seed=1, shard_maxcount=2)


def ddp_count_batches(
    rank: int, world: int, shard_dirs: list[str], init_file: str, out_dir: str, worker_counts: tuple[int, ...] = (0,)
) -> None:
    """One DDP rank (gloo, CPU): read an epoch of train and val batches of each shard set with each number of
    loader workers, a collective per batch. Counts go to ``rank{rank}.json`` keyed ``"{dir}:{split}:w{workers}"``.

    With workers, the loader starts them with forkserver (the rank runs gloo threads), as in training.
    """
    import datetime
    import json

    import torch.distributed as dist

    from songbloom.data.datamodule import SongBloomDataModule

    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=120)
    )
    try:
        counts = {}
        for workers in worker_counts:
            for shards_dir in shard_dirs:
                dm = SongBloomDataModule(
                    shards_dir=shards_dir, batch_size=2, num_workers=workers, max_frames=64, shuffle_buffer=2
                )
                dm.setup("fit")
                for name, loader in (("train", dm.train_dataloader()), ("val", dm.val_dataloader())):
                    n = 0
                    for _ in loader:
                        t = torch.ones(1)
                        dist.all_reduce(t)  # a rank with extra batches would block here until the timeout
                        n += 1
                    counts[f"{shards_dir}:{name}:w{workers}"] = n
        with open(f"{out_dir}/rank{rank}.json", "w") as f:
            json.dump(counts, f)
    finally:
        dist.destroy_process_group()
