"""Encode / decode throughput of the Oobleck VAE, in audio-seconds per wall-clock second.

Random weights (speed does not depend on their values). Geometries: ``release`` (168.7 M parameters, what
SongBloom ships) and ``tiny`` (the test/demo VAE with the same 1920x frame geometry). Decode is measured in one
pass and chunked the release way (128 frames, overlap 32), which decodes ~1.5x the frames for a 10 s clip but keeps
memory flat for long songs; one more row shows chunked decode without folding the weight norm.

    python benchmarks/vae_speed.py                      # both geometries, 10 s clips, CPU
    python benchmarks/vae_speed.py --geometries tiny --seconds 30 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import torch

from songbloom.models.vae import OobleckVAE, VAEConfig

GEOMETRIES = {"release": VAEConfig.release, "tiny": VAEConfig.tiny}


def best_time(fn: Callable[[], torch.Tensor], repeats: int, device: torch.device) -> float:
    """Fastest of ``repeats`` calls (the least disturbed by other load on the machine)."""
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times)


def bench_geometry(name: str, args: argparse.Namespace, device: torch.device) -> list[tuple[str, str, float, float]]:
    cfg = GEOMETRIES[name]()
    torch.manual_seed(0)
    vae = OobleckVAE(cfg).to(device).eval().requires_grad_(False).fold_weight_norm()
    n_params = sum(p.numel() for p in vae.parameters())
    samples = int(args.seconds * cfg.sample_rate)
    wav = torch.randn(1, cfg.io_channels, samples, device=device) * 0.1
    chunk = {"chunked": True, "chunk_size": args.chunk_size, "overlap": args.overlap}
    rows = []
    with torch.inference_mode():
        latent = torch.randn(1, cfg.latent_dim, samples // cfg.downsampling_ratio, device=device)
        # Warm-up on a short clip (allocator, oneDNN kernels) so the first timed call is not penalised.
        short = wav[:, :, : min(samples, cfg.sample_rate)]
        vae.decode(vae.encode(short))
        ops: list[tuple[str, Callable[[], torch.Tensor]]] = [
            ("encode", lambda: vae.encode(wav)),
            ("decode, one pass", lambda: vae.decode(latent)),
            (f"decode, chunked {args.chunk_size}/{args.overlap}", lambda: vae.decode(latent, **chunk)),
        ]
        for label, fn in ops:
            seconds = best_time(fn, args.repeats, device)
            rows.append((f"{name} ({n_params / 1e6:.3g} M)", label, seconds, args.seconds / seconds))
            print(f"  {rows[-1][0]:<18} {label:<28} {seconds:8.3f} s", flush=True)
        if not args.skip_unfolded:
            vae.fold_weight_norm(False)
            label = f"decode, chunked {args.chunk_size}/{args.overlap}, WN not folded"
            seconds = best_time(lambda: vae.decode(latent, **chunk), args.repeats, device)
            rows.append((f"{name} ({n_params / 1e6:.3g} M)", label, seconds, args.seconds / seconds))
            print(f"  {rows[-1][0]:<18} {label:<28} {seconds:8.3f} s", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--geometries", nargs="+", choices=sorted(GEOMETRIES), default=["release", "tiny"])
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length (default 10 s)")
    parser.add_argument("--repeats", type=int, default=1, help="timed calls per operation; the best is kept")
    parser.add_argument("--chunk-size", type=int, default=128)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--skip-unfolded", action="store_true", help="skip the row without weight-norm folding")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"Oobleck VAE throughput: {args.seconds:g} s stereo clips at 48 kHz, {where}, torch {torch.__version__}")
    print(f"load average before: {os.getloadavg()[0]:.2f} (other processes on the machine distort CPU timings)")
    rows = []
    for name in args.geometries:
        rows += bench_geometry(name, args, device)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print()
    print("| geometry | operation | wall time (s) | audio-s per s |")
    print("|---|---|---:|---:|")
    for geometry, label, seconds, speed in rows:
        print(f"| {geometry} | {label} | {seconds:.3f} | {speed:.3g} |")


if __name__ == "__main__":
    main()
