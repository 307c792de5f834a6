"""Generation speed: seconds per 0.64 s patch (16 latent frames), side by side with the official code and
against the floor of the workload on this machine.

Workload (the one ``../shared/tools/official_bench/official_part.py gen`` times): preset ``small``, random
weights, fp32, 2 torch threads; release sampling settings (CFG 1.5 on the LM and DiT 'h', temp 0.9, top-k 100,
repetition-penalty window 50, 36 DiT steps, diff_temp 0.95); the 850-token prefix (600 lyric tokens + a
fixed 250-frame prompt latent); EOS pushed to -1e4 so every song runs the requested patches. The first patch
(which carries the prefix) is reported apart; ``times`` are the other patches.

    # side by side (fresh processes alternated by pair.py) + floor, one table:
    python benchmarks/generate.py --official-python $OFFICIAL_VENV/bin/python --upstream $OFFICIAL_SRC
    # ours alone, batch 1 and 4, against the floor:
    python benchmarks/generate.py --batch 1 4
    # GPU: full_150s in bf16, 8 patches after 2 warm-up patches, one RESULT line per batch:
    python benchmarks/generate.py --preset full_150s --device cuda --dtype bfloat16 --batch 1 4 \
        --patches 10 --warmup-patches 2 --no-floor
    # the side pair.py runs (prints RESULT {"times": [...], "foreign": [...]}):
    python benchmarks/generate.py --pair-result --batch 1 --patches 6
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from machine_floor import (
    Machine,
    Phase,
    count_flops,
    floor_seconds,
    floor_table,
    machine_description,
    param_bytes,
    profile_table,
)
from official_pair import PAIR_SCRIPT, cpu_snap, foreign_cpu, pair_command, run_pair

from songbloom.config import SongBloomConfig
from songbloom.inference.generate import SamplingParams, encode_cfg_conditions, generate
from songbloom.models.songbloom import SongBloomModel

THREADS = 2  # official_part.py THREADS
LATENT_HZ = 25.0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def build_model(preset: str, device: torch.device, dtype: torch.dtype, seed: int = 1) -> SongBloomModel:
    torch.manual_seed(seed)
    cfg = SongBloomConfig.from_name(preset)
    with torch.device(device):  # initialise on the target device (the 2B model takes long on a CPU)
        model = SongBloomModel(cfg.model).eval()
    with torch.no_grad():
        model.skeleton_classifier[-1].bias[cfg.model.eos_id] = -1e4  # never stop early
    return model.to(device=device, dtype=dtype)


def song_inputs(model: SongBloomModel, batch: int, device: torch.device) -> tuple[list[list[int]], torch.Tensor]:
    cfg = model.cfg
    g = torch.Generator().manual_seed(3)
    lyrics = [torch.randint(8, len(cfg.lyric_vocab), (cfg.lyric_max_len,), generator=g).tolist() for _ in range(batch)]
    latents = torch.randn(batch, cfg.latent_dim, cfg.prompt_max_len, generator=g).to(device)
    return lyrics, latents.to(model.project_in.weight.dtype)


def run_once(
    model: SongBloomModel,
    batch: int,
    patches: int,
    steps: int,
    device: torch.device,
    cuda_graphs: bool | None = None,
    after_patch: Callable[[], None] | None = None,
) -> dict:
    """Generate ``batch`` songs of ``patches`` patches; seconds and foreign CPU-seconds of every patch."""
    cfg = model.cfg
    lyrics, latents = song_inputs(model, batch, device)
    params = SamplingParams(steps=steps, max_frames=patches * cfg.block_size)
    snaps: list[tuple[float, tuple[int, float]]] = []

    def progress(done: int, running: list[int]) -> None:
        _sync(device)
        snaps.append((time.perf_counter(), cpu_snap()))
        if after_patch is not None:
            after_patch()

    gens = [torch.Generator(device=device).manual_seed(i) for i in range(batch)]
    _sync(device)
    snaps.append((time.perf_counter(), cpu_snap()))
    with torch.inference_mode():
        cond, null = encode_cfg_conditions(model, lyrics, latents)
        out = generate(model, cond, null, params, generators=gens, progress=progress, cuda_graphs=cuda_graphs)
    assert all(o.num_frames == patches * cfg.block_size for o in out), [o.num_frames for o in out]
    pairs = list(zip(snaps, snaps[1:], strict=False))
    return {
        "times": [b[0] - a[0] for a, b in pairs],
        "foreign": [foreign_cpu(a[1], b[1]) for a, b in pairs],
    }


# ---------------------------------------------------------------- floor
def generation_phases(model: SongBloomModel, batch: int, patches: int, steps: int) -> list[Phase]:
    """Per steady patch of ``batch`` songs (2 x batch CFG rows) as the official sampler runs it.

    LM: 17 one-token forwards per patch (16 sketch tokens, then the one that yields ``h``) with the KV cache
    at the mean context of the timed patches; bytes = LM + classifier weights + the cache read. DiT: ``steps``
    forwards of the full ``[t, h, s, prev, x]`` sequence on both CFG rows; bytes = DiT weights.
    """
    cfg = model.cfg
    p, rows = cfg.block_size, 2 * batch
    dtype, device = model.project_in.weight.dtype, model.project_in.weight.device
    context = cfg.prefix_len + 1 + (p + 1) * patches // 2 + p // 2  # mean over patches 2..n of every step
    lm = model.ar_transformer
    cache = lm.new_cache(rows, context + 1)
    cache.length = context
    x = torch.randn(rows, 1, cfg.dim, dtype=dtype, device=device)
    lm_flops, _ = count_flops(lambda: model.classify(lm(x, cache)))
    g = lm.geom
    kv_bytes = 2 * g.num_layers * rows * context * g.dim * cache.keys[0].element_size()
    z = torch.randn(rows, p, cfg.latent_dim, dtype=dtype, device=device)
    h = torch.randn(rows, cfg.dim, dtype=dtype, device=device)
    s = torch.randn(rows, p, cfg.dim, dtype=dtype, device=device)
    t = torch.full((rows,), 0.5, dtype=dtype, device=device)
    dit_flops, _ = count_flops(lambda: model.dit_velocity(z, t, h, s, z))
    dit_modules = (model.nar_dit, model.project_in, model.project_out, model.to_timestep_embed)
    return [
        Phase(f"LM token step, {rows} rows, context {context}", lm_flops,
              param_bytes(lm, model.skeleton_classifier) + kv_bytes, p + 1),
        Phase(f"DiT step, {rows} rows x {3 * p + 2} tokens", dit_flops, param_bytes(*dit_modules), steps),
    ]  # fmt: skip


# ---------------------------------------------------------------- side by side
def pair_result(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    (batch,) = args.batch
    model = build_model(args.preset, torch.device("cpu"), torch.float32)
    r = run_once(model, batch, args.patches, args.steps, torch.device("cpu"))
    div = batch if args.per_song else 1
    res = {"times": [t / div for t in r["times"][1:]], "foreign": [f / div for f in r["foreign"][1:]],
           "first_patch_s": r["times"][0]}  # fmt: skip
    print("RESULT " + json.dumps(res), flush=True)


def run_official_pair(args: argparse.Namespace) -> tuple[float, dict[int, float]]:
    """pair.py: the official batch-1 song against ours at each batch (per song): (official, {batch: ours})."""
    me = f"{sys.executable} {Path(__file__).resolve()} --pair-result --patches {args.patches} --threads {THREADS}"
    ours = [f"{me} --batch {b}" + (" --per-song" if b > 1 else "") for b in args.batch]
    extra = ("--rounds", str(args.rounds), "--patches", str(args.patches))
    official, medians = run_pair(
        pair_command("gen", args.official_python, args.upstream, ours, *extra, pair_script=args.pair_script)
    )
    return official, dict(zip(args.batch, medians, strict=True))


def in_process(args: argparse.Namespace, model: SongBloomModel, device: torch.device) -> dict[int, float]:
    """Ours alone: seconds per patch per song at each batch, one RESULT line per batch."""
    graphs = False if args.no_cuda_graphs else None
    run_once(model, 1, 2, args.steps, device, graphs)  # warm-up (allocator, kernels, graphs)
    per_song = {}
    patch_s = model.cfg.block_size / LATENT_HZ
    for b in args.batch:
        r = run_once(model, b, args.patches, args.steps, device, graphs)
        times = r["times"][args.warmup_patches :]
        per_song[b] = statistics.median(times) / b
        card = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
        print("RESULT " + json.dumps({
            "measure": "generate", "preset": args.preset, "card": card, "dtype": args.dtype, "batch": b,
            "patch_times_s": times, "s_per_patch_per_song": per_song[b], "rtf_per_song": per_song[b] / patch_s,
            "rtf_batch": per_song[b] * b / patch_s,
        }), flush=True)  # fmt: skip
    return per_song


def report(
    args: argparse.Namespace,
    model: SongBloomModel,
    ours: dict[int, float],
    official: float | None,
    before: Machine | None = None,
) -> None:
    machine = Machine.measure(THREADS).best(before)
    print(f"\n{machine_description()}\n{machine.line()}")
    floors = {}
    for b in ours:
        phases = generation_phases(model, b, args.patches, args.steps)
        floors[b] = floor_seconds(phases, machine) / b
        print(f"\nFloor of one steady patch, batch {b} (preset {args.preset}, {args.steps} DiT steps):")
        print(floor_table(phases, machine))
    print("\n| sampler | batch | s per patch per song | official / ours | ours / floor | floor per song (s) |")
    print("|---|---|---|---|---|---|")
    if official:
        print(f"| official | 1 | {official:.3f} | 1.00x | {official / floors.get(1, float('nan')):.2f}x | "
              f"{floors.get(1, float('nan')):.3f} |")  # fmt: skip
    for b, s in ours.items():
        vs = f"**{official / s:.2f}x**" + (" per song" if b > 1 else "") if official else "not run"
        print(f"| songbloom | {b} | {s:.3f} | {vs} | **{s / floors[b]:.2f}x** | {floors[b]:.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--patches", type=int, default=6, help="patches per song (pair.py's --patches)")
    ap.add_argument("--warmup-patches", type=int, default=1, help="leading patches not timed (the first: prefix)")
    ap.add_argument("--steps", type=int, default=36)
    ap.add_argument("--threads", type=int, default=THREADS, help="torch CPU threads")
    ap.add_argument("--no-cuda-graphs", action="store_true", help="eager GPU sampler (graphs are on by default)")
    ap.add_argument("--no-floor", action="store_true", help="skip the floor (it is a CPU measure)")
    ap.add_argument("--profile", action="store_true", help="also print an op-by-op profile (first batch size)")
    ap.add_argument("--pair-result", action="store_true", help="print pair.py's RESULT line and nothing else")
    ap.add_argument("--per-song", action="store_true", help="with --pair-result: seconds per patch per song")
    ap.add_argument("--official-python", help="python of the official code's venv: run side by side via pair.py")
    ap.add_argument("--upstream", help="checkout of the official code at ef78022")
    ap.add_argument("--pair-script", type=Path, default=PAIR_SCRIPT)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    if args.pair_result:
        return pair_result(args)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    before = Machine.measure(THREADS) if device.type == "cpu" and not args.no_floor else None  # and after
    official = None
    if args.official_python:
        official, ours = run_official_pair(args)
        model = build_model(args.preset, device, getattr(torch, args.dtype))
    else:
        model = build_model(args.preset, device, getattr(torch, args.dtype))
        ours = in_process(args, model, device)
    if not args.no_floor and device.type == "cpu":
        report(args, model, ours, official, before)
    if args.profile:
        b = args.batch[0]
        print(f"\nprofile of patches 2..{args.patches} of a song at batch {b}:")
        print(profile_table(lambda start: run_once(model, b, args.patches, args.steps, device, after_patch=start)))


if __name__ == "__main__":
    main()
