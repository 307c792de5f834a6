"""The floor of a benchmark workload on this machine, shared by ``train_step.py`` and ``generate.py``.

A workload is a list of phases, each with its FLOPs, the bytes it must move and how often it runs:

- FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` over the workload's forward without checkpointing
  (attention through the math kernel, which the counter sees; causal attention counts in full);
- peak: best of at least 5 fp32 2048^3 matmuls at the workload's thread count (FLOP/s);
- bandwidth: best copy of a tensor of at least 512 MiB (bytes read + bytes written, per second);
- floor = sum over phases of count x max(FLOPs / peak, bytes / bandwidth).

The floor is what the workload would take if every phase ran at the machine's matmul peak or its copy
bandwidth, whichever binds; a measured time divided by the floor is the distance to it.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

MATMUL_N = 2048
MIN_MATMUL_REPS = 5
MIN_COPY_MIB = 512


@dataclass(frozen=True)
class Machine:
    """This machine's own peaks, measured at one thread count."""

    threads: int
    peak_flops: float  # FLOP/s
    bandwidth: float  # bytes/s

    @classmethod
    def measure(cls, threads: int, matmul_reps: int = 8, copy_mib: int = MIN_COPY_MIB, copy_reps: int = 5) -> Machine:
        if matmul_reps < MIN_MATMUL_REPS or copy_mib < MIN_COPY_MIB:
            raise ValueError(f"at least {MIN_MATMUL_REPS} matmuls and a {MIN_COPY_MIB} MiB copy")
        with _threads(threads):
            return cls(threads, matmul_peak(MATMUL_N, matmul_reps), copy_bandwidth(copy_mib, copy_reps))

    def best(self, other: Machine | None) -> Machine:
        """The higher peaks of two measurements (other processes only ever lower them)."""
        if other is None:
            return self
        return Machine(self.threads, max(self.peak_flops, other.peak_flops), max(self.bandwidth, other.bandwidth))

    def line(self) -> str:
        return (
            f"machine peaks at {self.threads} threads: fp32 {MATMUL_N}^3 matmul {self.peak_flops / 1e9:.1f} GFLOP/s, "
            f"copy {self.bandwidth / 1e9:.1f} GB/s"
        )


@dataclass(frozen=True)
class Phase:
    name: str
    flops: float  # per run of the phase
    bytes: float  # per run of the phase
    count: float = 1.0  # runs per measured unit (a step, a patch)

    def seconds(self, m: Machine) -> float:
        return self.count * max(self.flops / m.peak_flops, self.bytes / m.bandwidth)

    def bound(self, m: Machine) -> str:
        return "compute" if self.flops / m.peak_flops >= self.bytes / m.bandwidth else "memory"


def floor_seconds(phases: Iterable[Phase], m: Machine) -> float:
    return sum(p.seconds(m) for p in phases)


def floor_table(phases: list[Phase], m: Machine) -> str:
    """Markdown rows: one per phase, then the total."""
    rows = ["| phase | runs | GFLOP per run | MB per run | bound | floor (s) |", "|---|---|---|---|---|---|"]
    for p in phases:
        gflop, mb = p.flops / 1e9, p.bytes / 1e6
        rows.append(f"| {p.name} | {p.count:g} | {gflop:.3f} | {mb:.1f} | {p.bound(m)} | {p.seconds(m):.4f} |")
    rows.append(f"| **floor** | | | | | **{floor_seconds(phases, m):.4f}** |")
    return "\n".join(rows)


def matmul_peak(
    n: int = MATMUL_N, reps: int = 8, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> float:
    """Best FLOP/s of ``reps`` n^3 matmuls (one warm-up first)."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    torch.mm(a, b, out=out)
    best = float("inf")
    for _ in range(reps):
        sync()
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        sync()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def copy_bandwidth(mib: int = MIN_COPY_MIB, reps: int = 5) -> float:
    """Best (read + write) bytes/s of copying a ``mib`` MiB tensor into another (both touched first)."""
    src = torch.ones(mib * 2**20 // 4)
    dst = torch.zeros_like(src)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t0)
    return 2 * src.numel() * 4 / best


def count_flops(fn: Callable[[], Any]) -> tuple[float, dict[str, float]]:
    """FLOPs of ``fn()`` as FlopCounterMode counts them, in total and per module name.

    Runs without autograd; SDPA is forced onto the math kernel, which the counter sees (its CPU flash
    kernel is not counted at all).
    """
    with torch.no_grad(), FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        fn()
    by_module = {name: float(sum(ops.values())) for name, ops in counter.get_flop_counts().items()}
    return float(counter.get_total_flops()), by_module


def param_bytes(*modules: torch.nn.Module) -> int:
    seen: set[int] = set()
    total = 0
    for mod in modules:
        for p in mod.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel() * p.element_size()
    return total


@contextlib.contextmanager
def _threads(n: int):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def profile_table(fn: Callable[[Callable[[], None]], Any], rows: int = 15) -> str:
    """torch.profiler over ``fn(start)``: the top ops by self CPU time (where the time beyond the floor goes).

    The profiler records from the first call of ``start`` (or from the beginning if ``fn`` never calls it).
    """
    prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])

    def start() -> None:
        if prof.profiler is None:
            prof.start()

    fn(start)
    start()
    prof.stop()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=48)


# ---------------------------------------------------------------- the run's context
def machine_description() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}"
