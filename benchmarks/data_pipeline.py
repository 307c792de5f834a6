#!/usr/bin/env python
"""Data pipeline costs, measured side by side in one run (CPU).

(a) preprocessing throughput (audio seconds / s) with the release VAE geometry at random weights, against the
    fork's way: the same encoders called per item inside ``Dataset.__getitem__``, batch 1, no cache;
(b) the data cost of one training epoch: reading our shards against encoding every item again;
(c) datamodule throughput (samples / s) for 150 s crops with 2 workers (latent shards written directly).

    python benchmarks/data_pipeline.py --clips 3 --clip-seconds 4 --vae release
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]

from songbloom.data.audio import load_audio, prompt_from_wav  # noqa: E402
from songbloom.data.datamodule import SongBloomDataModule  # noqa: E402
from songbloom.data.encoders import Encoders, PhonemeLyricsProcessor, VAELatentEncoder  # noqa: E402
from songbloom.data.preprocess import PreprocessConfig, run_preprocess, write_index  # noqa: E402
from songbloom.data.shards import ResumableShardWriter, encode_sample, sample_key  # noqa: E402
from songbloom.data.synthetic import make_synthetic_dataset  # noqa: E402


class EnergySketch:
    """Cheap deterministic sketch stand-in (25 Hz), identical on both sides so the VAE dominates."""

    num_codes = 16384
    codebook_hash = "energy-bench"

    def tokenize(self, wav: torch.Tensor, sr: int) -> torch.Tensor:
        wav = wav.reshape(1, -1) if wav.dim() == 1 else wav
        f = wav.shape[-1] // 1920
        rms = wav[:, : f * 1920].reshape(wav.shape[0], f, 1920).pow(2).mean(-1).sqrt()
        return (rms * 4 * self.num_codes).long().clamp(0, self.num_codes - 1)


def build_vae(kind: str, vae_src: str | None) -> VAELatentEncoder:
    import songbloom.models as models

    if vae_src:
        models.__path__.append(str(Path(vae_src) / "songbloom" / "models"))
    return VAELatentEncoder.random(kind, seed=0)


def fork_style_epoch(manifest: Path, enc: Encoders, prompt_seconds: float = 10.0) -> float:
    """What the fork's Dataset does per item with no cache: decode, resample, VAE-encode, tokenize (batch 1)."""
    from songbloom.data.manifest import read_manifest

    records, _ = read_manifest(manifest)
    t0 = time.perf_counter()
    with torch.no_grad():
        for rec in records:
            audio = load_audio(rec.audio_path, 48000, 2)
            enc.latent.encode_moments(audio.wav.unsqueeze(0))
            enc.sketch.tokenize(audio.wav.mean(0, keepdim=True), 48000)
            enc.lyrics.process(" ".join(s.text for s in rec.sections if s.text) or "AA1")
            enc.latent.encode_moments(prompt_from_wav(audio.wav, 48000, prompt_seconds))
    return time.perf_counter() - t0


def write_latent_shards(out: Path, n: int, seconds: float, per_shard: int = 4) -> None:
    """Shards with random 64-d latents of ``seconds`` each (only reading is measured in (c))."""
    rng = np.random.default_rng(0)
    frames = int(seconds * 25)
    out.mkdir(parents=True, exist_ok=True)
    (out / "provenance.json").write_text(
        json.dumps({"num_pitch": 16384, "config": {"seconds_per_tag": 1.0, "block_size": 16}})
    )
    with ResumableShardWriter(out, "train-t0000-w00", maxcount=per_shard) as w:
        for i in range(n):
            key = sample_key(f"bench{i}", 0)
            arrays = {
                "latent_mean": rng.standard_normal((64, frames), dtype=np.float32),
                "latent_scale": rng.standard_normal((64, frames), dtype=np.float32),
                "sketch": rng.integers(0, 16384, frames).astype(np.int32),
                "lyric_ids": rng.integers(8, 330, 400).astype(np.int32),
                "prompt_mean": rng.standard_normal((64, 250), dtype=np.float32),
                "prompt_scale": rng.standard_normal((64, 250), dtype=np.float32),
            }
            meta = {
                "idx": f"bench{i}",
                "key": key,
                "frames": frames,
                "frame_rate": 25.0,
                "sections": None,
                "separator_ids": [9],
            }
            w.write(
                encode_sample(key, arrays, meta, {}),
                {
                    "key": key,
                    "idx": f"bench{i}",
                    "song_id": f"bench{i}",
                    "segment": 0,
                    "num_segments": 1,
                    "duration_s": seconds,
                    "frames": frames,
                },
            )
    write_index(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=3)
    ap.add_argument("--clip-seconds", type=float, default=4.0)
    ap.add_argument("--vae", choices=["release", "tiny"], default="release")
    ap.add_argument("--vae-src", help="a checkout holding songbloom/models/vae.py, if this tree lacks it")
    ap.add_argument("--dm-samples", type=int, default=24)
    ap.add_argument("--dm-batches", type=int, default=12)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manifest = make_synthetic_dataset(tmp / "songs", args.clips, args.clip_seconds, args.clip_seconds + 0.01)
        audio_s = sum(sf.info(p).duration for p in (tmp / "songs" / "audio").glob("*.wav"))
        try:
            latent = build_vae(args.vae, args.vae_src)
        except ImportError as e:
            print(f"VAE not available ({e}); (a) and (b) not measured yet")
            latent = None
        if latent is not None:
            enc = Encoders(latent=latent, lyrics=PhonemeLyricsProcessor(policy="drop"), sketch=EnergySketch())
            fork_s = fork_style_epoch(manifest, enc)
            cfg = PreprocessConfig(out_dir=str(tmp / "shards"), segment_seconds=150.0, store_prompt_audio=True)
            t0 = time.perf_counter()
            run_preprocess([manifest], cfg, enc)
            ours_s = time.perf_counter() - t0
            rows.append(("(a) preprocess, ours (1 process)", f"{audio_s / ours_s:.2f} audio-s/s", f"{ours_s:.1f} s"))
            rows.append(("(a) per-item encoding (fork way)", f"{audio_s / fork_s:.2f} audio-s/s", f"{fork_s:.1f} s"))
            dm = SongBloomDataModule(
                shards_dir=str(tmp / "shards"),
                batch_size=1,
                num_workers=0,
                max_frames=3750,
                shuffle_buffer=1,
                bucket_batches=1,
                batches_per_epoch=args.clips,
            )
            dm.setup("fit")
            t0 = time.perf_counter()
            n = sum(len(b["key"]) for b in dm.train_dataloader())
            read_s = time.perf_counter() - t0
            rows.append(("(b) epoch from shards", f"{n} samples", f"{read_s:.3f} s"))
            rows.append(("(b) epoch with per-item encoding", f"{args.clips} samples", f"{fork_s:.1f} s"))
            rows.append(("(b) ratio shards / per-item", f"{read_s / fork_s:.4f}", "target <= 0.05"))
        write_latent_shards(tmp / "latents", args.dm_samples, 160.0)
        dm = SongBloomDataModule(
            shards_dir=str(tmp / "latents"),
            batch_size=4,
            num_workers=2,
            max_frames=3750,
            shuffle_buffer=4,
            batches_per_epoch=args.dm_batches,
        )
        dm.setup("fit")
        loader = dm.train_dataloader()
        t0 = time.perf_counter()
        n, t_first, n_first = 0, None, 0
        for b in loader:
            assert b["x_latent"].shape[-1] == 3744  # 150 s rounded down to the 16-frame block
            n += len(b["key"])
            if t_first is None:
                t_first, n_first = time.perf_counter(), n
        dt = time.perf_counter() - t0
        steady = (n - n_first) / (time.perf_counter() - t_first)
        rows.append(("(c) datamodule, 150 s crops, 2 workers", f"{n / dt:.1f} samples/s", "incl. worker start"))
        rows.append(("(c) same, after the first batch", f"{steady:.1f} samples/s", "target >= 20"))
    width = max(len(r[0]) for r in rows)
    print(f"{'measure'.ljust(width)} | value | note")
    for r in rows:
        print(f"{r[0].ljust(width)} | {r[1]} | {r[2]}")


if __name__ == "__main__":
    main()
