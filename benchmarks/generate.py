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
import time

import torch

from songbloom.config import SongBloomConfig  # noqa: E402
from songbloom.inference.dit_sampler import euler_sample  # noqa: E402
from songbloom.inference.generate import SamplingParams, encode_cfg_conditions, generate  # noqa: E402
from songbloom.inference.sampling import apply_repetition_penalty, cfg_mix, sampling_probs  # noqa: E402
from songbloom.models.lm import KVCache  # noqa: E402
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


class _GrowingCache(KVCache):
    """Keys/values grown by concatenation at every step, as the HF ``DynamicCache`` the release uses does."""

    def __init__(self, num_layers: int):
        self.keys, self.values = [None] * num_layers, [None] * num_layers
        self.length, self.max_len = 0, 1 << 30

    def update(self, layer, k, v):
        self.keys[layer] = k if self.keys[layer] is None else torch.cat([self.keys[layer], k], dim=2)
        self.values[layer] = v if self.values[layer] is None else torch.cat([self.values[layer], v], dim=2)
        return self.keys[layer], self.values[layer]


def run_reference(model: SongBloomModel, patches: int, steps: int, device: torch.device) -> dict[str, float]:
    """Batch 1 with the release's data flow, on our modules, eagerly (a lower bound on the official cost).

    Per step: CFG rows through the LM with a concatenation-grown cache; per DiT step the full input is
    rebuilt (``cat([x, x])``, ``project_in(cat([prev, x]))``, timestep embedding) and the whole DiT output
    is computed; the final patch past the length limit is sampled and dropped. Not counted: the official
    code's Python/HF overheads and its second VAE encode of the null prompt.
    """
    cfg = model.cfg
    p_len = cfg.block_size
    lyrics = [torch.randint(8, len(cfg.lyric_vocab), (cfg.lyric_max_len,)).tolist()]
    latents = torch.randn(1, cfg.latent_dim, cfg.prompt_max_len, device=device)
    params = SamplingParams(steps=steps, max_frames=patches * p_len)
    stamps = []
    _sync(device)
    t0 = time.perf_counter()
    with torch.inference_mode():
        cond, null = encode_cfg_conditions(model, lyrics, latents)
        prefix = torch.cat([cond.prefix(), null.prefix()]).to(model.project_in.weight.dtype)
        cache = _GrowingCache(len(model.ar_transformer.layers))
        inputs = torch.cat([prefix, model.bos_token.to(prefix.dtype).expand(2, 1, -1)], dim=1)
        prev = torch.zeros(1, p_len, cfg.latent_dim, device=device, dtype=prefix.dtype)
        kept = []
        for patch in range(patches + 1):
            toks = []
            for _ in range(p_len):
                logits = model.classify(model.ar_transformer(inputs, cache)[:, -1])
                mixed = cfg_mix(logits[:1], logits[1:], params.lm_coef)
                pool = torch.cat(kept)[-params.penalty_window :][None] if kept else None
                mixed = apply_repetition_penalty(mixed, pool, cfg.num_pitch, "release")
                probs, _ = sampling_probs(mixed, params.temp, params.top_k)
                tok = torch.multinomial(probs, 1)[:, 0]
                toks.append(tok)
                emb = model.embed_sketch(tok)[:, None]
                inputs = torch.cat([emb, emb])
            h = model.ar_transformer(inputs, cache)[:1, -1]
            s_emb = model.embed_sketch(torch.stack(toks, dim=1))
            noise = torch.randn(1, p_len, cfg.latent_dim, device=device, dtype=prefix.dtype)

            def velocity(x, step, t, h=h, s_emb=s_emb, prev=prev):
                v = model.dit_velocity(
                    torch.cat([x, x]),
                    torch.cat([t, t]),
                    torch.cat([h, torch.zeros_like(h)]),
                    torch.cat([s_emb, torch.zeros_like(s_emb)]),
                    torch.cat([prev, prev]),
                )
                return cfg_mix(v[:1], v[1:], params.dit_coef)

            latent = euler_sample(velocity, noise, steps, params.diff_temp)
            if patch == patches:  # the release samples this one, then drops it
                break
            kept.append(torch.stack(toks, dim=1)[0])
            prev = latent
            a = model.acoustic_tokens(latent.transpose(1, 2)).to(prefix.dtype)
            inputs = torch.cat([a, a])
            _sync(device)
            stamps.append(time.perf_counter())
    per_patch = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    return {"first_patch_s": stamps[0] - t0, "s_per_patch": statistics.median(per_patch)}


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
    ap.add_argument("--no-reference", action="store_true", help="skip the release-structured reference loop")
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
    ref = None if args.no_reference else run_reference(model, args.patches, args.steps, device)
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
    print(
        "| sampler | batch | first patch (s) | s per patch (all songs) | s per patch per song | RTF (batch / per song) "
        "| per-song speed-up vs reference | vs official figure |"
    )
    print("|---|---|---|---|---|---|---|---|")
    if ref is not None:
        print(
            f"| release-structured reference | 1 | {ref['first_patch_s']:.3f} | {ref['s_per_patch']:.3f} | "
            f"{ref['s_per_patch']:.3f} | {ref['s_per_patch'] / patch_s:.3f} | 1.00x | - |"
        )
    for b, r in rows:
        per_song = r["s_per_patch"] / b
        vs = (
            f"{OFFICIAL_SMALL_CPU_S_PER_PATCH / r['s_per_patch']:.2f}x"
            if args.preset == "small" and args.device == "cpu" and b == 1
            else "-"
        )
        speedup = f"{ref['s_per_patch'] / per_song:.2f}x" if ref is not None else "-"
        print(
            f"| songbloom | {b} | {r['first_patch_s']:.3f} | {r['s_per_patch']:.3f} | {per_song:.3f} | "
            f"{r['s_per_patch'] / patch_s:.3f} / {per_song / patch_s:.3f} | {speedup} | {vs} |"
        )
    print(
        "RTF = seconds of compute per second of audio (batch total / per song). 'vs official figure' divides the "
        f"official {OFFICIAL_SMALL_CPU_S_PER_PATCH} s/patch of baselines.md (quiet machine, 2 threads) by ours."
    )


if __name__ == "__main__":
    main()
