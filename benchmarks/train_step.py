"""Training-step benchmark of the bare model, side by side with the official code and against the floor.

Workload (the one ``../shared/tools/official_bench/official_part.py train`` times): preset ``small`` (dim 512,
8 heads, 8 LM + 4 DiT layers, num_pitch 1024, block 16, lyric prefix 600, prompt prefix 250), random weights,
fp32, 2 torch threads; per repetition: conditions (lyrics + a fixed 250-frame prompt latent) + forward in train
mode + CE (special id ignored) + 0.1 x flow MSE + backward, 496 latent frames, batch 1, no optimizer step;
one warm-up repetition first.

    # side by side (fresh processes alternated by pair.py), floor and peak memory, one table:
    python benchmarks/train_step.py --official-python $OFFICIAL_VENV/bin/python --upstream $OFFICIAL_SRC
    # ours alone (no official side), every checkpointing mode in one process:
    python benchmarks/train_step.py
    # GPU: full_150s in bf16, 150 s crop, MFU from 5 steps after 2 warm-up steps:
    python benchmarks/train_step.py --device cuda --dtype bfloat16 --preset full_150s --frames 3744 \
        --checkpointing full --reps 5 --warmup 2
    # the side pair.py runs (prints RESULT {"times": [...], "foreign": [...]}):
    python benchmarks/train_step.py --pair-result --checkpointing full --reps 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from machine_floor import (
    Machine,
    Phase,
    count_flops,
    floor_seconds,
    floor_table,
    machine_description,
    matmul_peak,
    param_bytes,
    profile_table,
)
from official_pair import PAIR_SCRIPT, cpu_snap, foreign_cpu, pair_command, run_pair

from songbloom.config import SongBloomConfig
from songbloom.models.songbloom import SongBloomModel

THREADS = 2  # official_part.py THREADS
MODES = ("full", "selective", "none")
DIT_MODULES = ("nar_dit", "project_in", "project_out", "to_timestep_embed", "timestep_features")
SIDECAR_ENV = "SONGBLOOM_BENCH_SIDECAR"


@dataclass
class Workload:
    model: SongBloomModel
    x_sketch: torch.Tensor
    x_latent: torch.Tensor
    x_len: torch.Tensor
    lyric: list[int]
    prompt: torch.Tensor
    dtype: torch.dtype

    def forward(self):
        with torch.autocast(self.x_latent.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            cond = self.model.encode_conditions([self.lyric], self.prompt)
            return self.model(self.x_sketch, self.x_latent, self.x_len, cond)

    def step(self) -> None:
        """One repetition as official_part.py times it: zero_grad outside, no optimizer step."""
        out = self.forward()
        ce = F.cross_entropy(
            out.ar_logit.float().reshape(-1, out.ar_logit.shape[-1]),
            out.ar_target.reshape(-1),
            ignore_index=self.model.special_id,
        )
        (ce + 0.1 * F.mse_loss(out.nar_pred.float(), out.nar_target.float())).backward()


def build(preset: str, frames: int, device: torch.device, dtype: torch.dtype) -> Workload:
    torch.manual_seed(1)
    cfg = SongBloomConfig.from_name(preset).model
    with torch.device(device):
        model = SongBloomModel(cfg).train()
    frames -= frames % cfg.block_size
    g = torch.Generator().manual_seed(2)
    x_sketch = torch.randint(0, cfg.num_pitch, (1, frames), generator=g).to(device)
    x_latent = torch.randn(1, cfg.latent_dim, frames, generator=g).to(device)
    prompt = torch.randn(1, cfg.latent_dim, cfg.prompt_max_len, generator=g).to(device)
    lyric = torch.randint(8, len(cfg.lyric_vocab), (cfg.lyric_max_len,), generator=g).tolist()
    return Workload(model, x_sketch, x_latent, torch.tensor([frames], device=device), lyric, prompt, dtype)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(w: Workload, mode: str, reps: int, warmup: int) -> tuple[list[float], list[float]]:
    """Seconds per step and other processes' CPU-seconds during it, after ``warmup`` untimed steps."""
    w.model.set_gradient_checkpointing(mode)
    device = w.x_latent.device
    times, foreign = [], []
    for it in range(warmup + reps):
        w.model.zero_grad(set_to_none=True)
        _sync(device)
        s0, t0 = cpu_snap(), time.perf_counter()
        w.step()
        _sync(device)
        if it >= warmup:
            times.append(time.perf_counter() - t0)
            foreign.append(foreign_cpu(s0, cpu_snap()))
    return times, foreign


def training_phases(w: Workload) -> list[Phase]:
    """Forward FLOPs (no checkpointing) x 3 and parameter bytes x 3 (read forward, read backward, write grad)."""
    w.model.set_gradient_checkpointing("none")
    total, by_module = count_flops(w.forward)
    dit = sum(by_module.get(f"SongBloomModel.{m}", 0.0) for m in DIT_MODULES)
    dit_params = param_bytes(*(getattr(w.model, m) for m in DIT_MODULES))
    lm_params = param_bytes(w.model) - dit_params
    return [
        Phase("conditions + LM + heads, fwd+bwd", 3 * (total - dit), 3 * lm_params),
        Phase("DiT, fwd+bwd", 3 * dit, 3 * dit_params),
    ]


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- the side pair.py runs
def pair_result(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    w = build(args.preset, args.frames, torch.device("cpu"), torch.float32)
    times, foreign = time_steps(w, args.checkpointing, args.reps, warmup=1)
    sidecar = os.environ.get(SIDECAR_ENV)
    if sidecar:
        with open(sidecar, "a") as f:
            f.write(
                json.dumps(
                    {
                        "checkpointing": args.checkpointing,
                        "peak_rss_mb": peak_memory_mb(w.x_latent.device),
                        "times": times,
                    }
                )
                + "\n"
            )
    print("RESULT " + json.dumps({"times": times, "foreign": foreign}), flush=True)


def run_official_pair(args: argparse.Namespace) -> tuple[float, dict[str, float], dict[str, float]]:
    """pair.py with one --ours per checkpointing mode: (official median, ours medians, ours peak RSS)."""
    me = f"{sys.executable} {Path(__file__).resolve()} --pair-result --reps {args.reps} --threads {THREADS}"
    ours = [f"{me} --checkpointing {mode}" for mode in args.modes]
    extra = ("--rounds", str(args.rounds), "--reps", str(args.reps))
    cmd = pair_command("train", args.official_python, args.upstream, ours, *extra, pair_script=args.pair_script)
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as side:
        official, medians = run_pair(cmd, dict(os.environ, **{SIDECAR_ENV: side.name}))
        peaks: dict[str, float] = {}
        for line in side.read().splitlines():
            rec = json.loads(line)
            peaks[rec["checkpointing"]] = max(peaks.get(rec["checkpointing"], 0.0), rec["peak_rss_mb"])
    return official, dict(zip(args.modes, medians, strict=True)), peaks


# ---------------------------------------------------------------- report
def report(
    args: argparse.Namespace,
    w: Workload,
    medians: dict[str, float],
    peaks: dict[str, float],
    official: float | None,
    before: Machine | None = None,
) -> None:
    phases = training_phases(w)
    machine = Machine.measure(THREADS).best(before)
    floor = floor_seconds(phases, machine)
    print(
        f"\n{machine_description()}\n{machine.line()}\n\nFloor of one training step (preset {args.preset}, "
        f"{w.x_sketch.shape[1]} frames, batch 1):\n{floor_table(phases, machine)}\n"
    )
    print("| checkpointing | median step (s) | peak RSS (MB) | official / ours | ours / floor |")
    print("|---|---|---|---|---|")
    for mode, med in medians.items():
        vs = f"**{official / med:.2f}x**" if official else "not run"
        print(f"| {mode} | {med:.3f} | {peaks.get(mode, float('nan')):.0f} | {vs} | {med / floor:.2f}x |")
    if official:
        print(
            f"| official (its gradient checkpointing: every LM and DiT block) | {official:.3f} | - | 1.00x "
            f"| {official / floor:.2f}x |"
        )


def in_process(args: argparse.Namespace) -> tuple[Workload, dict[str, float], dict[str, float]]:
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    w = build(args.preset, args.frames, device, dtype)
    medians, peaks = {}, {}
    for mode in args.modes:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        times, _ = time_steps(w, mode, args.reps, args.warmup)
        medians[mode], peaks[mode] = statistics.median(times), peak_memory_mb(device)
        print(
            "RESULT "
            + json.dumps(
                {
                    "measure": "train_step",
                    "preset": args.preset,
                    "device": args.device,
                    "dtype": args.dtype,
                    "frames": w.x_sketch.shape[1],
                    "checkpointing": mode,
                    "times": times,
                    "median_s": medians[mode],
                    "peak_mem_mb": peaks[mode],
                }
            ),
            flush=True,
        )
    return w, medians, peaks


def mfu_line(w: Workload, median: float) -> None:
    """Model FLOPs (3 x forward) per second over the device's measured matmul peak and, on CUDA, the card."""
    flops = 3 * count_flops(w.forward)[0]
    n = 8192 if w.x_latent.device.type == "cuda" else 2048  # 2048^3 is too small to fill a GPU
    peak = matmul_peak(n, dtype=w.dtype, device=w.x_latent.device)
    card = torch.cuda.get_device_name() if w.x_latent.device.type == "cuda" else "cpu"
    print(
        "RESULT "
        + json.dumps(
            {
                "measure": "train_mfu",
                "card": card,
                "model_tflop_per_step": flops / 1e12,
                "median_s": median,
                "achieved_tflops": flops / median / 1e12,
                "matmul_peak_tflops": peak / 1e12,
                "mfu_vs_matmul_peak": flops / median / peak,
            }
        ),
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--frames", type=int, default=496, help="latent frames per sample (25 Hz)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--threads", type=int, default=THREADS, help="torch CPU threads")
    ap.add_argument("--reps", type=int, default=3, help="timed steps (pair.py's --reps)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--checkpointing", choices=MODES, default=None, help="one mode (default: all three)")
    ap.add_argument("--pair-result", action="store_true", help="print pair.py's RESULT line and nothing else")
    ap.add_argument("--official-python", help="python of the official code's venv: run side by side via pair.py")
    ap.add_argument("--upstream", help="checkout of the official code at ef78022")
    ap.add_argument("--pair-script", type=Path, default=PAIR_SCRIPT)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--mfu", action="store_true", help="also print model-FLOP utilisation (GPU check)")
    ap.add_argument("--profile", action="store_true", help="also print an op-by-op profile of one step (first mode)")
    args = ap.parse_args()
    args.modes = (args.checkpointing,) if args.checkpointing else MODES
    if args.pair_result:
        return pair_result(args)
    torch.set_num_threads(args.threads)
    before = Machine.measure(THREADS) if args.device == "cpu" else None  # peaks measured before and after
    if args.official_python:
        official, medians, peaks = run_official_pair(args)
        w = build(args.preset, args.frames, torch.device("cpu"), torch.float32)
    else:
        official = None
        w, medians, peaks = in_process(args)
    if args.mfu:
        mfu_line(w, medians[args.modes[0]])
    if args.profile:
        w.model.set_gradient_checkpointing(args.modes[0])
        print(f"\nprofile of one step, checkpointing {args.modes[0]}:")
        print(profile_table(lambda start: (w.model.zero_grad(set_to_none=True), start(), w.step())))
    if w.x_latent.device.type == "cpu":
        report(args, w, medians, peaks, official, before)


if __name__ == "__main__":
    main()
