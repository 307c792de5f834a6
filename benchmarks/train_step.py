"""Training-step benchmark of the bare model (issue: foundation).

Forward + backward of CE + 0.1 x flow-MSE on a preset (default ``small``: dim 512, 8 heads, 8 LM layers,
4 DiT layers, num_pitch 1024, block 16, lyric prefix 600, prompt prefix 250) with 20 s of latents
(496 frames = 31 patches), batch 1. Prints the median step time, LM tokens/s, peak memory and the achieved
FLOP/s as a fraction of this machine's own matmul peak measured in the same run, with gradient
checkpointing on (as the official code always runs) and off.

    python benchmarks/train_step.py                         # CPU fp32
    python benchmarks/train_step.py --device cuda --dtype bfloat16 --preset full_150s --frames 3744
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch
import torch.nn.functional as F

from songbloom.config import SongBloomConfig
from songbloom.models.songbloom import SongBloomModel


def matmul_peak_flops(device: torch.device, dtype: torch.dtype, n: int = 2048, reps: int = 10) -> float:
    """Best-of-N FLOP/s of one square matmul: this machine's practical peak for the given dtype."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(reps):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def model_flops_per_step(cfg, lm_tokens: int, n_patches: int) -> float:
    """Model FLOPs of forward + backward (3x forward), counting matmuls and attention scores/values."""
    d, f = cfg.dim, cfg.ffn_dim
    per_token_layer = 2 * (4 * d * d + 3 * d * f)
    lm = cfg.lm_layers * (per_token_layer * lm_tokens + 2 * 2 * d * lm_tokens * lm_tokens / 2)
    seq = 3 * cfg.block_size + 2
    dit = cfg.diff_layers * n_patches * (per_token_layer * seq + 2 * 2 * d * seq * seq)
    heads = lm_tokens * 2 * (d * d + d * (cfg.num_pitch + 1))
    return 3 * (lm + dit + heads)


def run(args: argparse.Namespace) -> list[dict]:
    device = torch.device(args.device)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    torch.manual_seed(0)
    cfg = SongBloomConfig.from_name(args.preset).model
    model = SongBloomModel(cfg).to(device).train()
    frames = args.frames - args.frames % cfg.block_size
    x_sketch = torch.randint(0, cfg.num_pitch, (1, frames), device=device)
    x_latent = torch.randn(1, cfg.latent_dim, frames, device=device)
    x_len = torch.tensor([frames], device=device)
    lyric = torch.randint(8, len(cfg.lyric_vocab), (cfg.lyric_max_len,)).tolist()
    prompt = torch.randn(1, cfg.latent_dim, cfg.prompt_max_len, device=device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    n_patches = frames // cfg.block_size
    lm_tokens = cfg.prefix_len + 1 + (cfg.block_size + 1) * n_patches
    flops = model_flops_per_step(cfg, lm_tokens, n_patches)
    peak = matmul_peak_flops(device, dtype)

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            cond = model.encode_conditions([lyric], prompt)
            out = model(x_sketch, x_latent, x_len, cond)
            ce = F.cross_entropy(out.ar_logit.float().transpose(1, 2), out.ar_target, ignore_index=cfg.special_id)
            loss = ce + 0.1 * F.mse_loss(out.nar_pred.float(), out.nar_target.float())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    rows = []
    for ckpt in ("full", "selective", "none"):
        model.set_gradient_checkpointing(ckpt)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        step()  # warm-up (allocations, AdamW state)
        times = []
        for _ in range(args.reps):
            _sync(device)
            t0 = time.perf_counter()
            step()
            _sync(device)
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        mem = (
            torch.cuda.max_memory_allocated() / 2**20
            if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        )
        rows.append(
            dict(checkpointing=ckpt, median_s=med, lm_tokens_per_s=lm_tokens / med, peak_mem_mb=mem,
                 achieved_tflops=flops / med / 1e12, mfu=flops / med / peak, peak_tflops=peak / 1e12)
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--frames", type=int, default=496, help="latent frames per sample (25 Hz)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--official-s", type=float, default=10.71,
                    help="official median step time on the same config/machine (baselines.md: 10.71 s, CPU)")
    args = ap.parse_args()
    rows = run(args)
    print(f"preset={args.preset} frames={args.frames} device={args.device} dtype={args.dtype} "
          f"threads={torch.get_num_threads()}")
    print("| checkpointing | median step (s) | LM tokens/s | peak mem (MB) | TFLOP/s | MFU | speed-up vs official |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['checkpointing']} | {r['median_s']:.2f} | {r['lm_tokens_per_s']:.0f} | {r['peak_mem_mb']:.0f} "
              f"| {r['achieved_tflops']:.3f} | {r['mfu']:.1%} | {args.official_s / r['median_s']:.2f}x |")
    print(f"matmul peak measured in this run: {rows[0]['peak_tflops']:.3f} TFLOP/s")


if __name__ == "__main__":
    main()
