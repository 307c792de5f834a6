"""The shared floor helper and pair.py reader of benchmarks/ (loaded by path: scripts there import each other
as top-level modules, the way ``python benchmarks/<script>.py`` finds them)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


floor = _load("machine_floor")
pair = _load("official_pair")


def test_floor_is_the_sum_over_phases_of_the_binding_resource():
    m = floor.Machine(threads=2, peak_flops=100e9, bandwidth=10e9)
    compute = floor.Phase("dit", flops=50e9, bytes=1e9, count=2)  # 0.5 s compute vs 0.1 s memory, twice
    memory = floor.Phase("lm", flops=1e9, bytes=2e9, count=3)  # 0.01 s compute vs 0.2 s memory, 3 times
    assert compute.bound(m) == "compute" and memory.bound(m) == "memory"
    assert floor.floor_seconds([compute, memory], m) == pytest.approx(2 * 0.5 + 3 * 0.2)
    table = floor.floor_table([compute, memory], m)
    assert "**1.6000**" in table and "| memory |" in table


def test_count_flops_sees_attention_and_matmuls():
    q = torch.randn(2, 4, 10, 8)
    w = torch.randn(16, 8)
    total, by_module = floor.count_flops(lambda: (F.scaled_dot_product_attention(q, q, q), q @ w.T))
    attention = 2 * (2 * 2 * 4 * 10 * 10 * 8)  # q k^T and p v
    assert total == attention + 2 * (2 * 4 * 10) * 8 * 16
    assert by_module["Global"] == total


def test_machine_peaks_need_the_minimum_workload():
    with pytest.raises(ValueError):
        floor.Machine.measure(1, matmul_reps=4)
    with pytest.raises(ValueError):
        floor.Machine.measure(1, copy_mib=256)


def test_pair_output_is_read_back():
    text = (
        "round 0 official   median 3.412 s of 3 clean (all: [3.4, 3.41, 3.42], foreign CPU 1%)\n"
        "load average 1.2; train: official 3.412 s\n"
        "  ours[0] 2.301 s -> 1.48x the official speed   (python benchmarks/train_step.py --pair-result)\n"
        "  ours[1] 1.950 s -> 1.75x the official speed   (python benchmarks/train_step.py --pair-result)\n"
    )
    assert pair.parse_pair_output(text) == (3.412, [2.301, 1.95])
    with pytest.raises(ValueError):
        pair.parse_pair_output("failed")


def test_best_of_two_machine_measurements_keeps_the_higher_peaks():
    a = floor.Machine(threads=2, peak_flops=300e9, bandwidth=8e9)
    b = floor.Machine(threads=2, peak_flops=100e9, bandwidth=20e9)
    assert a.best(b) == floor.Machine(2, 300e9, 20e9)
    assert a.best(None) is a
