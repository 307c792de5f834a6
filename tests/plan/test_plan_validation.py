"""The plan's allocated peak is within 10 % of real training steps' peak, measured on the CPU by the profiler's
memory events (``tests/plan/measure.py``, independent of the estimator), for tiny and small presets under
several settings: LoRA or full training, checkpointing none/full/selective/every 2nd, fp32 or bf16-mixed with a
bf16 frozen base, EMA."""

from __future__ import annotations

import pytest

from tests.plan.measure import compose_run_config, measured_peak
from tests.plan.test_plan_cli import plan_json

BASE = [
    "experiment=demo", "data=synthetic", "debug=ci", "demo.enabled=false", "callbacks.demo_audio.enabled=false",
    "trainer.limit_val_batches=0", "init.source=scratch", "num_threads=1",
]  # fmt: skip
CROP_64 = ["data.min_frames=64", "data.max_frames=64"]
CASES = {
    "tiny-full-train-fp32": ["model=tiny", "data.batch_size=4", *CROP_64],
    "tiny-lora-ckpt-full-ema": [
        "model=tiny", "lora=all", "training.gradient_checkpointing=full", "training.ema=true", "data.batch_size=2",
        *CROP_64,
    ],
    "tiny-lora-bf16-base-selective": [
        "model=tiny", "lora=all", "lora.base_dtype=bf16", "trainer.precision=bf16-mixed",
        "training.gradient_checkpointing=selective", "data.batch_size=2", *CROP_64,
    ],
    "small-full-train-every-2nd": ["model=small", "training.gradient_checkpointing=2", "data.batch_size=1", *CROP_64],
}  # fmt: skip
SLOW = {"small-full-train-every-2nd"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in CASES])
def test_estimate_within_10_percent_of_the_measured_cpu_peak(name, tmp_path):
    overrides = [*BASE, f"paths.root_dir={tmp_path}", *CASES[name]]
    plan = plan_json(*overrides)  # python -m songbloom.plan with the overrides train.py would get
    measured = measured_peak(compose_run_config(overrides), steps=2)
    allocated = max(plan["phases"].values())
    print(f"{name}: measured {measured / 1e6:.2f} MB, estimated {allocated / 1e6:.2f} MB")
    assert abs(allocated - measured) <= 0.10 * measured, (name, measured, allocated)
    assert plan["total_bytes"] == allocated  # a CPU run: no CUDA context, no allocator reserve
