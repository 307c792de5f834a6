"""Generation speed: seconds per 0.64 s patch (16 latent frames) and real-time factor.

Random weights at a named preset (default ``small``, the geometry of ``/work/shared/reference/baselines.md``),
release sampling settings (CFG 1.5 on both stages, top-k 100, penalty window 50, 36 DiT steps, diff_temp
0.95), a 600-token lyric prefix and a 10 s prompt latent. EOS is disabled in the classifier so every song
runs to the requested length. The first patch (which also encodes the 850-token prefix) is reported apart.

    python benchmarks/generate.py --preset small --device cpu --dtype float32 --batch 1 4 --patches 6
    python benchmarks/generate.py --preset full_150s --device cuda --dtype bfloat16 --batch 1 4 --patches 30
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from songbloom.config import SongBloomConfig  # noqa: E402
from songbloom.inference.generate import SamplingParams, encode_cfg_conditions, generate  # noqa: E402
from songbloom.models.songbloom import SongBloomModel  # noqa: E402

OFFICIAL_SMALL_CPU_S_PER_PATCH = 3.43  # baselines.md: official code, preset small, batch 1, CPU fp32, 2 threads


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def build_model(preset: str, device: torch.device, dtype: torch.dtype, seed: int = 0) -> SongBloomModel:
    torch.manual_seed(seed)
    cfg = SongBloomConfig.from_name(preset)
    with torch.device(device):  # initialise on the target device (the 2B model takes long on a CPU)
        model = SongBloomModel(cfg.model).eval()
    with torch.no_grad():
        model.skeleton_classifier[-1].bias[cfg.model.eos_id] = -1e4  # never stop early
    return model.to(device=device, dtype=dtype)


def gemm_gflops(device: torch.device, dtype: torch.dtype) -> float:
    """Machine calibration: throughput of a DiT-sized matmul (100 x 512 x 2048) right now."""
    a = torch.randn(100, 512, device=device, dtype=dtype)
    w = torch.randn(2048, 512, device=device, dtype=dtype)
    for _ in range(3):
        torch.nn.functional.linear(a, w)
    _sync(device)
    n = 50
    t0 = time.perf_counter()
    for _ in range(n):
        torch.nn.functional.linear(a, w)
    _sync(device)
    return 2 * 100 * 512 * 2048 * n / (time.perf_counter() - t0) / 1e9


def run_once(
    model: SongBloomModel, batch: int, patches: int, steps: int, device: torch.device, cuda_graphs: bool | None = None
) -> dict[str, float]:
    cfg = model.cfg
    vocab_n = len(cfg.lyric_vocab)
    lyrics = [torch.randint(8, vocab_n, (cfg.lyric_max_len,)).tolist() for _ in range(batch)]
    latents = torch.randn(batch, cfg.latent_dim, cfg.prompt_max_len, device=device)
    params = SamplingParams(steps=steps, max_frames=patches * cfg.block_size)
    stamps: list[float] = []

    def progress(done: int, running: int) -> None:
        _sync(device)
        stamps.append(time.perf_counter())

    gens = [torch.Generator(device=device).manual_seed(i) for i in range(batch)]
    _sync(device)
    t0 = time.perf_counter()
    with torch.inference_mode():
        cond, null = encode_cfg_conditions(model, lyrics, latents)
        out = generate(model, cond, null, params, generators=gens, progress=progress, cuda_graphs=cuda_graphs)
    _sync(device)
    total = time.perf_counter() - t0
    assert all(o.num_frames == patches * cfg.block_size for o in out), [o.num_frames for o in out]
    per_patch = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    steady = statistics.median(per_patch) if per_patch else total
    return {"first_patch_s": stamps[0] - t0, "s_per_patch": steady, "total_s": total}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--patches", type=int, default=6, help="patches per song (the first is reported apart)")
    ap.add_argument("--steps", type=int, default=36)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--no-cuda-graphs", action="store_true", help="eager GPU sampler (graphs are on by default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    model = build_model(args.preset, device, dtype)
    n_params = model.num_parameters()
    patch_s = model.cfg.block_size / 25.0
    graphs = False if args.no_cuda_graphs else None
    run_once(model, 1, 2, args.steps, device, graphs)  # warm-up (allocator, kernels)
    rows = []
    for b in args.batch:
        r = run_once(model, b, args.patches, args.steps, device, graphs)
        rows.append((b, r))
    calib = gemm_gflops(device, dtype)
    try:
        load = f" (load average {os.getloadavg()[0]:.1f})"
    except OSError:
        load = ""
    print(
        f"\npreset {args.preset} ({n_params / 1e6:.1f} M generator params), {args.device} {args.dtype}, "
        f"{torch.get_num_threads()} CPU threads, {args.steps} DiT steps, CFG 1.5 (LM + DiT 'h'), "
        f"{args.patches} patches per song; calibration matmul {calib:.1f} GFLOPS{load}"
    )
    print("| batch | first patch (s) | s per patch (all songs) | s per patch per song | RTF per song | vs official |")
    print("|---|---|---|---|---|---|")
    for b, r in rows:
        per_song = r["s_per_patch"] / b
        vs = (
            f"{OFFICIAL_SMALL_CPU_S_PER_PATCH / r['s_per_patch']:.2f}x"
            if args.preset == "small" and args.device == "cpu" and b == 1
            else "-"
        )
        print(
            f"| {b} | {r['first_patch_s']:.3f} | {r['s_per_patch']:.3f} | {per_song:.3f} | "
            f"{r['s_per_patch'] / patch_s:.3f} / {per_song / patch_s:.3f} | {vs} |"
        )
    print("RTF = seconds of compute per second of audio (batch total / per song).")


if __name__ == "__main__":
    main()
