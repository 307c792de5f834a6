"""Pre-move format fixtures: files written by today's training and export code, kept so that later code must
still read them. Written by main at commit 57c9a6f; do NOT regenerate after the restructuring (regenerating with
the new code would only test the new code against itself).

    PYTHONPATH=. python tests/data/premove/make_fixtures.py      # from the repository root

Writes, next to this file (every path inside is relative: the runs ran with the fixture folder as cwd):

- ``base_release/``: a tiny random generator + tiny VAE in the official release file layout (the base model).
- ``run_dir/``: the run directory ``python train.py`` writes for a tiny scratch run (full weights, demo VAE,
  2 steps): config.json, metrics, checkpoints/ (``last.ckpt`` is also the full-weights training checkpoint).
  Pruned: the end-of-run export folder (disabled) and ``checkpoints/step=*.ckpt`` (the same state as last.ckpt).
- ``adapter_only.ckpt``: the last checkpoint of a tiny ``experiment=japanese_lora`` run on ``base_release``
  (``training.save_frozen_base=false``: adapters + fully-trained tensors only; the base comes from the release).
- ``peft_adapter/``: that run's end-of-run PEFT adapter export (its absolute base paths rewritten relative to this
  folder: today's exporter writes ``base_model_name_or_path`` etc. as absolute paths).
- ``expected.json``: shapes and checksums of teacher-forced outputs and weights of each fixture as loaded by
  ``songbloom.inference.checkpoints.load_checkpoint`` today, and the stored step of the run dir.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[2]
STEPS = 2
# The smallest geometry the config accepts (DiT heads need >= 32 dims): ~60k generator parameters.
GEOMETRY = {"dim": 32, "num_heads": 1, "lm_layers": 1, "diff_layers": 1, "num_pitch": 16}


def full_run_overrides(max_steps: int) -> list[str]:
    """The overrides of the ``run_dir`` run (besides paths.root_dir); a resume passes them again."""
    from tests.training.conftest import TINY_CPU

    return [
        *TINY_CPU,
        f"trainer.max_steps={max_steps}",
        f"callbacks.checkpoint.every_n_steps={STEPS}",
        *(f"++model.overrides.{k}={v}" for k, v in GEOMETRY.items()),
        "demo.enabled=true",  # the demo's tiny VAE belongs to the run: the checkpoint loads on its own
        "demo.prepare_data=false",
        "demo.generate=false",
        "callbacks.demo_audio.enabled=false",
        "export.enabled=false",
        "run_name=full",
    ]


def tf_batch(cfg, seed: int = 7):
    """A fixed teacher-forcing batch for model config ``cfg`` (SongBloomConfig)."""
    m = cfg.model
    g = torch.Generator().manual_seed(seed)
    b, frames = 2, 4 * m.block_size
    x_len = torch.tensor([frames, 2 * m.block_size])
    sketch = torch.randint(0, m.num_pitch, (b, frames), generator=g)
    latent = torch.randn(b, m.latent_dim, frames, generator=g)
    for i, n in enumerate(x_len.tolist()):
        sketch[i, n:] = m.eos_id
        latent[i, :, n:] = 0
    lyrics = [torch.randint(1, len(m.lyric_vocab), (10,), generator=g).tolist() for _ in range(b)]
    prompt = torch.randn(b, m.latent_dim, 8, generator=g)
    n_patches = int(x_len.sum()) // m.block_size
    noise = torch.randn(n_patches, m.block_size, m.latent_dim, generator=g)
    t = torch.rand(n_patches, generator=g)
    return sketch, latent, x_len, lyrics, prompt, noise, t


@torch.no_grad()
def summarise(bundle) -> dict:
    """Shapes and checksums of a loaded SongBloom bundle: teacher-forced outputs, generator and VAE weights."""
    model = bundle.model.float().eval()
    sketch, latent, x_len, lyrics, prompt, noise, t = tf_batch(bundle.config)
    cond = model.encode_conditions(lyrics, prompt)
    out = model(sketch, latent, x_len, cond, noise=noise, t=t)
    tensors = {"ar_logit": out.ar_logit, "nar_pred": out.nar_pred}
    summary = {
        name: {"shape": list(x.shape), "sum": float(x.double().sum()), "abs_sum": float(x.double().abs().sum())}
        for name, x in tensors.items()
    }
    params = model.state_dict()
    summary["generator_weights"] = {
        "count": len(params),
        "abs_sum": float(sum(v.double().abs().sum() for v in params.values() if v.is_floating_point())),
    }
    vae = bundle.vae.state_dict()
    summary["vae_weights"] = {
        "count": len(vae),
        "abs_sum": float(sum(v.double().abs().sum() for v in vae.values() if v.is_floating_point())),
    }
    return summary


def main() -> int:
    sys.path.insert(0, str(REPO_ROOT))
    from songbloom.checkpoints.registry import load_checkpoint
    from tests.training.conftest import run_flat
    from tests.export.conftest import write_tiny_release_with_vae
    from tests.training.conftest import TINY_CPU, compose_config

    torch.set_num_threads(1)
    for name in ("base_release", "run_dir", "peft_adapter", "adapter_only.ckpt", "expected.json"):
        p = HERE / name
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    work = HERE / "_work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    os.chdir(HERE)  # every path the runs store is relative to this folder

    write_tiny_release_with_vae(Path("base_release"), **GEOMETRY)
    common = [*TINY_CPU, f"trainer.max_steps={STEPS}", f"callbacks.checkpoint.every_n_steps={STEPS}"]

    full = run_flat(
        compose_config(
            [
                "paths.root_dir=_work",
                *full_run_overrides(STEPS),
            ]
        )
    )
    assert full["steps"] == STEPS, full

    Path("_work/codebook.safetensors").write_bytes(b"")  # declared only: synthetic data stands in for the shards
    lora = run_flat(
        compose_config(
            [
                "paths.root_dir=_work",
                "experiment=japanese_lora",
                *common,
                "init.release_dir=base_release",
                "sketch.codebook_path=_work/codebook.safetensors",
                "training.condition_dropout=false",
                "training.optim.lr=3e-3",
                "export.merge_lora=false",
                "export.release_format=false",
                "run_name=lora",
            ]
        )
    )
    assert lora["steps"] == STEPS, lora

    runs = Path("_work/outputs/runs")
    # Resume reads checkpoints/last.ckpt; the step-named copy of the same state is pruned.
    shutil.copytree(runs / "full", "run_dir", ignore=shutil.ignore_patterns("export", ".hydra", "step=*.ckpt"))
    shutil.copy(runs / "lora" / "checkpoints" / "last.ckpt", "adapter_only.ckpt")
    shutil.copytree(runs / "lora" / "export" / "peft_adapter", "peft_adapter")
    shutil.rmtree(work)
    # Today's adapter export stores the base as an absolute path: keep the fixture free of this machine's paths
    # (relative to this folder instead); the tests pass the base explicitly anyway.
    for name in ("adapter_config.json", "songbloom_adapter.json"):
        p = Path("peft_adapter") / name
        p.write_text(p.read_text().replace(str(HERE) + "/", ""))

    ckpt = torch.load("run_dir/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    expected = {
        "written_by": "main at 57c9a6f (tests/data/premove/make_fixtures.py)",
        "run_dir_global_step": int(ckpt["global_step"]),
        "full_ckpt": summarise(load_checkpoint("run_dir/checkpoints/last.ckpt")),
        "adapter_only_ckpt": summarise(load_checkpoint("adapter_only.ckpt", base_path="base_release")),
        "peft_adapter": summarise(load_checkpoint("peft_adapter", base_path="base_release")),
        "base_release": summarise(load_checkpoint("base_release")),
    }
    Path("expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
