"""Training-loop overhead and fine-tuning memory.

CPU (default): steps/s and audio-seconds/s of the full Lightning loop (SongBloomLitModule + datamodule +
callbacks, as ``train.py`` runs it) against the bare model step (forward, loss, backward, clip, AdamW) on the
same batches, side by side in one process. Target: the loop adds at most 10% per step.

GPU (``--device cuda``): peak memory of one optimizer step of ``full_150s`` at batch 1 with 150 s crops in
bf16-mixed, for LoRA (LM attention + MLP and DiT attention, frozen base in bf16, gradient checkpointing)
and for full fine-tuning. Target: LoRA fits in 16 GB.

    python benchmarks/train_loop.py                                   # CPU, small preset, synthetic songs
    python benchmarks/train_loop.py --data shards --shards-dir data/shards
    python benchmarks/train_loop.py --device cuda --memory            # GPU memory table (full_150s)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import lightning as L
import torch

from songbloom.building.lora import LoRASettings, apply_lora, cast_frozen_linears
from songbloom.config import SongBloomConfig
from songbloom.models.songbloom import SongBloomModel
from songbloom.training.batch import as_training_batch
from songbloom.training.callbacks import StepRecorder
from songbloom.training.lit_module import OptimSettings, SongBloomLitModule, TrainSettings
from songbloom.training.optim import build_optimizer, parameter_groups
from songbloom.training.synthetic_data import SyntheticSongDataModule, SyntheticSpec


class StepTimer(L.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.times.append(time.perf_counter())


def make_datamodule(args, cfg: SongBloomConfig) -> L.LightningDataModule:
    if args.data == "shards":
        from songbloom.training.data import build_datamodule

        return build_datamodule(
            {
                "kind": "shards",
                "shards_dir": args.shards_dir,
                "batch_size": args.batch_size,
                "num_workers": args.workers,
                "max_frames": args.frames,
            },
            cfg,
            seed=0,
        )
    spec = SyntheticSpec(
        num_songs=args.batch_size * (args.steps + args.warmup + 2),
        min_frames=args.frames,
        max_frames=args.frames,
        prompt_frames=250,
    )
    return SyntheticSongDataModule(cfg.model, spec, batch_size=args.batch_size, num_workers=args.workers)


def lightning_loop(args, cfg: SongBloomConfig) -> tuple[float, float]:
    """Median seconds per step and audio-seconds per step of the full training loop."""
    torch.manual_seed(0)
    model = SongBloomModel(cfg.model)
    lit = SongBloomLitModule(model, TrainSettings(optim=OptimSettings(schedule="constant")))
    timer = StepTimer()
    trainer = L.Trainer(
        accelerator=args.device if args.device == "cpu" else "gpu",
        devices=1,
        precision="32-true" if args.device == "cpu" else "bf16-mixed",
        max_steps=args.warmup + args.steps,
        gradient_clip_val=1.0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[StepRecorder(None), timer],
    )
    trainer.fit(lit, datamodule=make_datamodule(args, cfg))
    gaps = [b - a for a, b in zip(timer.times[args.warmup :], timer.times[args.warmup + 1 :], strict=False)]
    audio = statistics.median(r.get("audio_seconds_per_s", 0) for r in lit.step_records[args.warmup + 1 :])
    step = statistics.median(gaps)
    return step, audio * step


def bare_loop(args, cfg: SongBloomConfig) -> float:
    """Median seconds per step of forward + loss + backward + clip + AdamW on pre-collated batches."""
    from songbloom.training.losses import songbloom_loss

    torch.manual_seed(0)
    device = torch.device(args.device)
    model = SongBloomModel(cfg.model).to(device).train()
    opt = build_optimizer(parameter_groups(model, 0.1), 1e-4, (0.9, 0.95), 1e-8)
    dm = make_datamodule(args, cfg)
    dm.setup("fit")
    it = iter(dm.train_dataloader())
    batches = [as_training_batch(next(it)).to(device) for _ in range(min(args.steps + args.warmup, 8))]
    times = []
    for i in range(args.warmup + args.steps):
        b = batches[i % len(batches)]
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            conds = model.encode_conditions(
                list(b.lyric_ids),
                b.prompt_latents,
                b.prompt_lengths,
                b.prompt_latents.shape[-1] if b.prompt_latents is not None else None,
            )
            out = model(b.sketch, b.latents, b.lengths, conds)
            loss = songbloom_loss(out, ignore_id=model.special_id).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def memory_table(args) -> list[dict]:
    """Peak GPU memory of one optimizer step of full_150s, batch 1, 150 s crop (3744 frames), bf16-mixed."""
    from songbloom.training.losses import songbloom_loss

    device = torch.device("cuda")
    cfg = SongBloomConfig.from_name("full_150s")
    frames = (args.memory_frames // cfg.model.block_size) * cfg.model.block_size
    rows = []
    for mode in args.memory_modes:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        model = SongBloomModel(cfg.model)
        model.set_gradient_checkpointing("full")
        if mode == "lora":
            apply_lora(model, LoRASettings(targets=("lm_attn", "lm_mlp", "dit_attn"), rank=16, alpha=32, dropout=0.05))
            for name in (
                "skeleton_emb.weight",
                "skeleton_classifier.0.weight",
                "skeleton_classifier.2.weight",
                "skeleton_classifier.2.bias",
                "condition_provider.conditioners.lyrics.output_proj.weight",
            ):
                model.get_parameter(name).requires_grad_(True)
            cast_frozen_linears(model, torch.bfloat16)
        model.to(device).train()
        opt = build_optimizer(parameter_groups(model, 0.1), 1e-4, (0.9, 0.95), 1e-8)
        g = torch.Generator().manual_seed(0)
        sketch = torch.randint(cfg.model.num_pitch, (1, frames), generator=g).to(device)
        latents = torch.randn(1, cfg.model.latent_dim, frames, generator=g).to(device)
        lengths = torch.tensor([frames], device=device)
        lyric = [torch.randint(1, len(cfg.model.lyric_vocab), (cfg.model.lyric_max_len,), generator=g).to(device)]
        prompt = torch.randn(1, cfg.model.latent_dim, cfg.model.prompt_max_len, generator=g).to(device)
        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        for _ in range(2):  # the second step includes AdamW states
            with torch.autocast("cuda", dtype=torch.bfloat16):
                conds = model.encode_conditions(lyric, prompt, None, None)
                out = model(sketch, latents, lengths, conds)
                loss = songbloom_loss(out, ignore_id=model.special_id).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        free, total = torch.cuda.mem_get_info()
        rows.append(
            {
                "mode": mode,
                "frames": frames,
                "trainable_M": trainable / 1e6,
                "peak_GiB": torch.cuda.max_memory_allocated() / 2**30,
                "peak_reserved_GiB": torch.cuda.max_memory_reserved() / 2**30,
                # what the process holds beyond the allocator's pool: CUDA context, cuBLAS workspaces
                "context_GiB": max(0, total - free - torch.cuda.memory_reserved()) / 2**30,
                "s_per_step": (time.perf_counter() - t0) / 2,
            }
        )
        print("RESULT " + json.dumps({"measure": "train_memory", "card": torch.cuda.get_device_name(), **rows[-1]}),
              flush=True)
        del model, opt, out, loss
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="small")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data", choices=("synthetic", "shards"), default="synthetic")
    p.add_argument("--shards-dir", default="data/shards")
    p.add_argument("--frames", type=int, default=496, help="crop length in latent frames (496 = ~20 s)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--rounds", type=int, default=2, help="alternating bare/loop measurements (best kept)")
    p.add_argument("--memory", action="store_true", help="GPU: peak memory of full_150s LoRA vs full fine-tuning")
    p.add_argument("--memory-frames", type=int, default=3750, help="150 s at 25 Hz")
    p.add_argument("--memory-modes", nargs="+", choices=("lora", "full"), default=["lora", "full"])
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory:
        print(f"{'mode':<6} {'frames':>6} {'trainable M':>12} {'peak GiB':>9} {'s/step':>7}")
        for r in memory_table(args):
            row = f"{r['mode']:<6} {r['frames']:>6} {r['trainable_M']:>12.1f} {r['peak_GiB']:>9.2f}"
            print(f"{row} {r['s_per_step']:>7.2f}")
        return
    cfg = SongBloomConfig.from_name(args.preset)
    # Alternate the two measurements and keep each one's best median: other load on the machine only ever
    # slows a measurement down, so the minimum is the fairest side-by-side comparison.
    bares, loops = [], []
    for _ in range(args.rounds):
        bares.append(bare_loop(args, cfg))
        loops.append(lightning_loop(args, cfg))
    bare = min(bares)
    loop, audio_per_step = min(loops)
    print(
        f"preset={args.preset} device={args.device} frames={args.frames} batch={args.batch_size} "
        f"data={args.data} workers={args.workers} threads={torch.get_num_threads()}"
    )
    print(f"{'':<22} {'s/step':>8} {'steps/s':>8} {'audio s/s':>10}")
    print(f"{'bare model step':<22} {bare:>8.3f} {1 / bare:>8.3f} {audio_per_step / bare:>10.2f}")
    print(f"{'training loop':<22} {loop:>8.3f} {1 / loop:>8.3f} {audio_per_step / loop:>10.2f}")
    print(f"loop overhead: {100 * (loop / bare - 1):+.1f}% (target <= +10%)")


if __name__ == "__main__":
    main()
