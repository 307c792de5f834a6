"""Sketch-token speed: MuQ extraction and tokenisation in audio-seconds per second, k-means time per 1M frames.

Weights are random (no download): the ``large`` MuQ has MuQ-large-msd-iter's architecture (12 x 1024
conformer), so its cost equals the released model's; ``tiny`` is the test/demo model. Every number on one
device is measured in the same run, so rows compare directly.

    python benchmarks/sketch_speed.py                      # CPU, plus CUDA when available
    python benchmarks/sketch_speed.py --muq-sizes tiny --seconds 10 --codes 1024
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from songbloom.sketch import MiniBatchKMeans, MuQFeatureExtractor, build_tiny_muq
from songbloom.sketch.kmeans import nearest_code

# MuQ-large-msd-iter geometry (config.json of the release): 12 conformer layers of width 1024.
_LARGE = dict(encoder_dim=1024, encoder_depth=12, conv_dim=512)


def build_muq(size: str) -> torch.nn.Module:
    if size == "tiny":
        return build_tiny_muq(seed=0)
    from muq import MuQ, MuQConfig
    from transformers import Wav2Vec2ConformerConfig

    w2v2 = Wav2Vec2ConformerConfig(hidden_size=1024, num_hidden_layers=12, num_attention_heads=16,
                                   intermediate_size=4096, position_embeddings_type="rotary",
                                   num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16).to_dict()
    w2v2 = json.loads(json.dumps(w2v2, default=str))
    cfg = MuQConfig(stat={"melspec_2048_mean": 6.768, "melspec_2048_std": 18.418}, w2v2_config=w2v2, **_LARGE)
    return MuQ(cfg).eval()


def _timed(fn, device: torch.device, repeats: int) -> float:
    fn()  # warm-up (allocations, cuDNN autotune)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / repeats


def bench_device(device: torch.device, args: argparse.Namespace):
    """Yields ``(measurement, speed, detail)`` rows as they are measured."""
    audio_seconds = args.seconds * args.clips
    wavs = [torch.randn(args.seconds * 24000) * 0.1 for _ in range(args.clips)]
    g = torch.Generator().manual_seed(0)
    for size in args.muq_sizes:
        muq = build_muq(size).to(device)
        ext = MuQFeatureExtractor(muq, chunk_seconds=args.chunk_seconds, context_seconds=5.0, batch_size=args.clips,
                                  device=device)
        with torch.inference_mode():
            sec = _timed(lambda ext=ext: ext.extract_many(wavs, 24000), device, args.repeats)
        yield (f"MuQ-{size} features ({ext.feature_dim}-d, {args.clips} x {args.seconds} s clips)",
               f"{audio_seconds / sec:,.1f} audio-s/s", f"{sec:.3f} s per batch")
        dim = ext.feature_dim
        centers = torch.randn(args.codes, dim, generator=g).to(device)
        feats = torch.randn(audio_seconds * 25, dim, generator=g).to(device)
        qsec = _timed(lambda: nearest_code(feats, centers), device, args.repeats)
        yield (f"quantise {dim}-d features, {args.codes} codes", f"{audio_seconds / qsec:,.1f} audio-s/s",
               f"{feats.shape[0] / qsec:,.0f} frames/s")
        yield (f"tokenise end to end (MuQ-{size} + {args.codes} codes)",
               f"{audio_seconds / (sec + qsec):,.1f} audio-s/s", "sum of the two rows above")
        del muq, ext
    dim = 1024
    km = MiniBatchKMeans(args.codes, dim, device=device, reseed_every=0)
    km.init_random(torch.randn(args.codes, dim, generator=g))
    batch = torch.randn(args.batch_frames, dim, generator=g).to(device)
    ksec = _timed(lambda: km.partial_fit(batch), device, args.repeats)
    per_million = ksec * 1e6 / args.batch_frames
    yield (f"k-means minibatch update, {args.codes} codes x 1024-d, batch {args.batch_frames}",
           f"{per_million:,.1f} s per 1M frames per epoch",
           f"{per_million * 90_000 / 1e6:.1f} s per audio-hour per epoch")
    init_codes = min(args.codes, args.init_codes)
    sample = torch.randn(4 * init_codes, dim, generator=g)
    km_init = MiniBatchKMeans(init_codes, dim, device=device)
    t = time.perf_counter()
    km_init.init_kmeans_plus_plus(sample, lloyd_iters=2)
    if device.type == "cuda":
        torch.cuda.synchronize()
    yield (f"k-means++ init, {init_codes} codes from {4 * init_codes} frames", f"{time.perf_counter() - t:.2f} s",
           "cost grows as codes^2 (sample = 4 x codes)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--muq-sizes", nargs="+", default=["tiny", "large"], choices=["tiny", "large"])
    p.add_argument("--seconds", type=int, default=30, help="length of each benchmark clip")
    p.add_argument("--clips", type=int, default=2)
    p.add_argument("--chunk-seconds", type=float, default=30.0)
    p.add_argument("--codes", type=int, default=16384)
    p.add_argument("--init-codes", type=int, default=1024, help="codebook size for the k-means++ timing")
    p.add_argument("--batch-frames", type=int, default=4096)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--devices", nargs="+", default=None, help="default: cpu and cuda when available")
    args = p.parse_args()
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, "
          f"CUDA: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}, "
          f"load average at start {os.getloadavg()[0]:.1f}")
    print("| device | measurement | speed | detail |")
    print("|---|---|---|---|")
    for dev in devices:
        for name, speed, detail in bench_device(torch.device(dev), args):
            print(f"| {dev} | {name} | {speed} | {detail} |", flush=True)
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    if "cuda" not in devices:
        print("| cuda | all of the above | not measured (no GPU on this machine) | |")


if __name__ == "__main__":
    main()
