"""Activation bytes measured on the CPU: one real block of the run's width, at two short lengths.

A probe takes one LM decoder layer, one DiT block, or the rest of the generator (embeddings, conditioners,
classifier, loss; every LM/DiT block removed), with the run's adapters, trainable flags, dtypes, autocast and
checkpointing, materialises it on the CPU with placeholder values, and runs forward and backward at two short
lengths inside ``torch.profiler`` with ``profile_memory``. Its memory events give, per region:

- ``fwd_in``: bytes still allocated after the forward, inside autocast (what the graph and the autocast
  weight cache hold);
- ``fwd_after``: the same after leaving autocast (the cache is dropped): what backward starts with;
- ``fwd_peak``: the highest point during the forward;
- ``bwd_peak``: the highest point during the backward above its start (the incoming gradient, gradients of
  activations, the block's recomputation under checkpointing and its parameter gradients).

Every quantity is affine in the length (flash and memory-efficient attention keep O(length) state), so two
lengths give ``c + a * x`` (``x`` = LM tokens, DiT patches); the rest of the generator is fitted as
``c0 + B * (c1 + a * patches)`` from three probes. Probes run under ``torch.random.fork_rng``: the run's random
streams are untouched, and they run on one intra-op thread (restored afterwards).

Width scaling (what keeps the first estimate of a ``full_*`` run within seconds on a CPU): a block wider than
:data:`PROBE_WIDTH_CAP` is not run at its width ``d``. The same block (the run's adapters, trainable flags,
dtypes, head size ``d / heads``) is built at two widths ``w1 < w2 <= cap`` (:func:`probe_widths`; heads =
``w / head size``, so attention state per token scales like the width too) and each fitted coefficient is
extrapolated to ``d``:

- per unit of length ``a(w) = beta * w + gamma``: every activation of a block is a fixed number of width-sized
  (or heads-sized) vectors per token, plus width-free ones (a LoRA adapter's rank-sized intermediate), so two
  widths fix it exactly;
- constant ``c(w) = alpha * w^2 + beta * w``: what does not grow with the length is weights (``w^2``: the
  autocast cache of bf16 weight copies, weight gradients) and vectors or adapter matrices (``w``: norms,
  biases, ``rank x w`` LoRA factors).

Both hold as long as the same event sets each peak at ``w1``, ``w2`` and ``d`` (the validation in
``docs/memory.md`` compares the extrapolation with the full-width probe). The rest of the generator (embeddings,
conditioners, classifier, loss) is always probed at the run's width.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from songbloom.models.layers import RotaryEmbedding, run_layers
from songbloom.models.songbloom import SongBloomModel
from songbloom.plan.settings import PlanSettings

LM_LENGTHS = (32, 96)
DIT_PATCHES = (1, 3)
REST_SHAPES = ((1, 1), (1, 2), (2, 1))  # (rows, patches)
PROBE_WIDTH_CAP = 512  # blocks wider than this are probed at two widths <= cap and extrapolated
QUANTITIES = ("fwd_in", "fwd_after", "fwd_peak", "bwd_peak")

# The profiler's C++ backend logs an "ERROR ... gpuGetDeviceCount failed" line on machines without a GPU when it
# starts; only fatal messages are of use at the start of a training run (read when the profiler first starts).
os.environ.setdefault("KINETO_LOG_LEVEL", "5")


@dataclass(frozen=True)
class Measure:
    fwd_in: float
    fwd_after: float
    fwd_peak: float
    bwd_peak: float


@dataclass(frozen=True)
class Affine:
    """``const + per_unit * x`` for each quantity."""

    const: Measure
    per_unit: Measure

    def at(self, x: float) -> Measure:
        return Measure(*(getattr(self.const, q) + getattr(self.per_unit, q) * x for q in QUANTITIES))


@dataclass(frozen=True)
class RestFit:
    """``c0 + rows * (c1 + a * patches)``."""

    c0: Measure
    c1: Measure
    a: Measure

    def at(self, rows: int, patches: int) -> Measure:
        return Measure(
            *(getattr(self.c0, q) + rows * (getattr(self.c1, q) + getattr(self.a, q) * patches) for q in QUANTITIES)
        )


def _combine(f: Callable[..., float], *ms: Measure) -> Measure:
    return Measure(*(f(*(getattr(m, q) for m in ms)) for q in QUANTITIES))


# ---------------------------------------------------------------------------------------------- measuring
class _Regions:
    """Named regions of one profiler session; memory events are attributed to the region they fall in."""

    def __init__(self) -> None:
        self.names: list[str] = []

    @contextlib.contextmanager
    def region(self, name: str) -> Iterator[None]:
        self.names.append(name)
        with torch.profiler.record_function(name):
            yield

    def deltas(self, prof) -> dict[str, list[int]]:
        events = list(prof.profiler.kineto_results.events())
        spans = sorted((e.start_ns(), e.end_ns(), e.name()) for e in events if e.name() in set(self.names))
        mem = sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]")
        out: dict[str, list[int]] = {n: [] for n in self.names}
        i = 0
        for t, nbytes in mem:
            while i < len(spans) and spans[i][1] < t:
                i += 1
            if i < len(spans) and spans[i][0] <= t <= spans[i][1]:
                out[spans[i][2]].append(nbytes)
        return out


def _peak(deltas: list[int]) -> int:
    level, top = 0, 0
    for d in deltas:
        level += d
        top = max(top, level)
    return top


@dataclass
class _Sample:
    key: str
    forward: Callable[[], torch.Tensor]
    params: list[nn.Parameter]


def _run(sample: _Sample, regions: _Regions, autocast: bool) -> None:
    ctx = torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast)
    with regions.region(f"{sample.key}/fwd"):
        ctx.__enter__()
        out = sample.forward()
    with regions.region(f"{sample.key}/exit"):
        ctx.__exit__(None, None, None)
    with regions.region(f"{sample.key}/bwd"):
        out.backward(torch.ones_like(out))
    del out
    for p in sample.params:
        p.grad = None


def measure(samples: list[_Sample], autocast: bool) -> dict[str, Measure]:
    """Run every sample once under one profiler session; returns each sample's :class:`Measure`."""
    from torch.profiler import ProfilerActivity, profile

    regions = _Regions()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        for s in samples:
            _run(s, regions, autocast)
    d = regions.deltas(prof)
    out = {}
    for s in samples:
        fwd, ext, bwd = d[f"{s.key}/fwd"], d[f"{s.key}/exit"], d[f"{s.key}/bwd"]
        out[s.key] = Measure(
            fwd_in=float(sum(fwd)),
            fwd_after=float(sum(fwd) + sum(ext)),
            fwd_peak=float(_peak(fwd)),
            bwd_peak=float(_peak(bwd)),
        )
    return out


# ---------------------------------------------------------------------------------------------- modules
@torch.no_grad()
def _fill(module: nn.Module) -> nn.Module:
    """Placeholder values for a module materialised with ``to_empty`` (memory does not depend on them)."""
    for name, t in [*module.named_parameters(), *module.named_buffers()]:
        if name.endswith("beta"):
            t.zero_()
        elif t.is_floating_point():
            t.normal_(0.0, 0.02)
    for m in module.modules():
        if isinstance(m, RotaryEmbedding):
            m.inv_freq.copy_(1.0 / (m.base ** (torch.arange(0, m.rot_dim, 2).float() / m.rot_dim)))
    return module


def materialise(module: nn.Module, ps: PlanSettings) -> nn.Module:
    module = module.to_empty(device="cpu")
    if ps.fsdp and ps.autocast:  # FSDP computes with gathered bf16 copies of the weights
        module.to(torch.bfloat16)
    return _fill(module).train()


def stream_dtype(ps: PlanSettings) -> torch.dtype:
    return torch.bfloat16 if ps.bf16_true or (ps.fsdp and ps.autocast) else torch.float32


class _Stack(nn.Module):
    """One block run the way the LM/DiT runs its blocks (``run_layers``), rotary tables outside the probe."""

    def __init__(self, block: nn.Module, rotary: RotaryEmbedding, every: int):
        super().__init__()
        self.layers = nn.ModuleList([block])
        self.rotary = rotary
        self.every = every

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        return run_layers(self.layers, x, self.every, lambda layer, h: layer(h, cos, sin))


def block_samples(kind: str, stack: _Stack, ps: PlanSettings, sizes: tuple[int, ...], d: int) -> list[_Sample]:
    params = [p for p in stack.parameters() if p.requires_grad]
    samples = []
    for size in sizes:
        rows, length = (1, size) if kind.startswith("lm") else (size, ps.dit_tokens)
        cos, sin = stack.rotary.cos_sin(torch.arange(length))
        x = torch.randn(rows, length, d, dtype=stream_dtype(ps), requires_grad=True)
        samples.append(_Sample(f"{kind}:{size}", lambda x=x, c=cos, s=sin: stack(x, c, s), params))
    return samples


def _lyrics(model: SongBloomModel, length: int) -> list[int]:
    vocab = len(model.cfg.lyric_vocab)
    return torch.randint(1, max(vocab, 2), (length,)).tolist()


def _rest_forward(model: SongBloomModel, ps: PlanSettings, rows: int, patches: int) -> Callable[[], torch.Tensor]:
    """The teacher-forced forward and loss of ``songbloom.training.losses.songbloom_loss`` (CE + flow MSE)."""
    m = model.cfg
    frames = patches * m.block_size
    sketch = torch.randint(0, m.num_pitch, (rows, frames))
    latents = torch.randn(rows, m.latent_dim, frames)
    lengths = torch.full((rows,), frames)
    prompt = torch.randn(rows, m.latent_dim, ps.prompt_frames)
    lyric = [_lyrics(model, m.lyric_max_len) for _ in range(rows)]

    def forward() -> torch.Tensor:
        cond = model.encode_conditions(lyric, prompt, None, prompt.shape[-1])
        out = model(sketch, latents, lengths, cond)
        logits = out.ar_logit.float()
        ce = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), out.ar_target.reshape(-1), ignore_index=m.num_pitch + 1
        )
        with torch.no_grad():
            (logits.argmax(-1) == out.ar_target).sum()
        flow = (out.nar_pred.float() - out.nar_target.float()).pow(2).mean(dim=(1, 2)).mean()
        return ce + 0.1 * flow

    return forward


def rest_module(model: SongBloomModel, ps: PlanSettings) -> SongBloomModel:
    """A materialised copy of ``model`` without its LM and DiT blocks."""
    lm, dit = model.ar_transformer.layers, model.nar_dit.layers
    model.ar_transformer.layers, model.nar_dit.layers = nn.ModuleList(), nn.ModuleList()
    try:
        rest = copy.deepcopy(model)
    finally:
        model.ar_transformer.layers, model.nar_dit.layers = lm, dit
    return materialise(rest, ps)


def rest_samples(rest: SongBloomModel, ps: PlanSettings) -> list[_Sample]:
    params = [p for p in rest.parameters() if p.requires_grad]
    return [_Sample(f"rest:{r}x{n}", _rest_forward(rest, ps, r, n), params) for r, n in REST_SHAPES]


def block_stack(model: SongBloomModel, kind: str, every: int, ps: PlanSettings) -> _Stack:
    owner = model.ar_transformer if kind.startswith("lm") else model.nar_dit
    block = materialise(copy.deepcopy(owner.layers[0]), ps)
    rotary = _fill(copy.deepcopy(owner.rotary).to_empty(device="cpu"))
    return _Stack(block, rotary, every)


# ---------------------------------------------------------------------------------------------- fits
def affine(ms: dict[str, Measure], kind: str, sizes: tuple[int, ...]) -> Affine:
    lo, hi = ms[f"{kind}:{sizes[0]}"], ms[f"{kind}:{sizes[1]}"]
    per = _combine(lambda a, b: (b - a) / (sizes[1] - sizes[0]), lo, hi)
    const = _combine(lambda a, p: a - p * sizes[0], lo, per)
    return Affine(const, per)


def rest_fit(ms: dict[str, Measure]) -> RestFit:
    (r0, n0), (_, n1), (r2, _) = REST_SHAPES
    m0, m1, m2 = (ms[f"rest:{r}x{n}"] for r, n in REST_SHAPES)
    a = _combine(lambda x, y: (y - x) / (n1 - n0), m0, m1)  # per row and patch
    c1 = _combine(lambda x, z, s: (z - x) / (r2 - r0) - s * n0, m0, m2, a)  # per row
    c0 = _combine(lambda x, p, s: x - r0 * (p + s * n0), m0, c1, a)
    return RestFit(c0, c1, a)


def probe_widths(dim: int, head_dim: int, cap: int | None = None) -> tuple[int, ...]:
    """The widths blocks are probed at: the run's own up to ``cap`` (:data:`PROBE_WIDTH_CAP`), else two
    multiples of the head size, the larger at most ``cap`` and the smaller half of it."""
    cap = PROBE_WIDTH_CAP if cap is None else cap
    w2 = cap // head_dim * head_dim
    w1 = max(w2 // 2 // head_dim, 1) * head_dim
    if dim <= cap or w1 >= w2:
        return (dim,)
    return (w1, w2)


def _quadratic(w1: int, w2: int, d: int) -> Callable[[float, float], float]:
    """``alpha * w^2 + beta * w`` through ``(w1, f1)`` and ``(w2, f2)``, at ``d``."""

    def at(f1: float, f2: float) -> float:
        alpha = (f2 / w2 - f1 / w1) / (w2 - w1)
        return alpha * d * d + (f1 / w1 - alpha * w1) * d

    return at


def scale_width(fits: list[Affine], widths: tuple[int, ...], dim: int) -> Affine:
    """One block's fit at ``dim`` from its fits at ``widths`` (see the module docstring)."""
    if len(fits) == 1:
        return fits[0]
    (w1, w2), (f1, f2) = widths, fits
    per = _combine(lambda a, b: a + (b - a) * (dim - w1) / (w2 - w1), f1.per_unit, f2.per_unit)
    return Affine(_combine(_quadratic(w1, w2, dim), f1.const, f2.const), per)


def block_modes(ps: PlanSettings, layers: int) -> dict[int, int]:
    """Blocks per checkpointing mode: {mode: count} with mode 0 plain, 1 checkpointed, -1 selective."""
    k = ps.checkpoint_every
    if k in (0, 1, -1):
        return {k: layers}
    ckpt = math.ceil(layers / k)
    return {1: ckpt, 0: layers - ckpt}


@dataclass(frozen=True)
class ActivationFits:
    lm: dict[int, Affine]  # per checkpointing mode, x = LM tokens (all rows)
    dit: dict[int, Affine]  # x = DiT sequences (all rows' patches)
    rest: RestFit


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Probes are tiny ops: one intra-op thread is several times faster than two on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _block_probes(
    model: SongBloomModel, ps: PlanSettings, widths: tuple[int, ...], narrow: Callable[[int], SongBloomModel] | None
) -> list[_Sample]:
    m = model.cfg
    sources = {w: model if w == m.dim else narrow(w) for w in widths}  # type: ignore[misc]
    samples: list[_Sample] = []
    for kind, sizes in (("lm", LM_LENGTHS), ("dit", DIT_PATCHES)):
        for mode in block_modes(ps, m.lm_layers if kind == "lm" else m.diff_layers):
            for w in widths:
                stack = block_stack(sources[w], kind, mode, ps)
                samples += block_samples(f"{kind}{mode}@{w}", stack, ps, sizes, w)
    return samples


def probe_activations(
    model: SongBloomModel, ps: PlanSettings, narrow: Callable[[int], SongBloomModel] | None = None
) -> ActivationFits:
    """Measure the blocks and the rest of ``model`` (a meta-device generator with its training layout).

    ``narrow(width)`` builds the same generator at a smaller width (one block of each kind is enough); with it,
    blocks wider than :data:`PROBE_WIDTH_CAP` are probed at :func:`probe_widths` and extrapolated."""
    m = model.cfg
    widths = probe_widths(m.dim, m.head_dim) if narrow is not None else (m.dim,)
    with torch.random.fork_rng(devices=[]), _one_thread():
        torch.manual_seed(0)
        samples = _block_probes(model, ps, widths, narrow)
        samples += rest_samples(rest_module(model, ps), ps)
        ms = measure(samples, ps.autocast)

    def fit(kind: str, sizes: tuple[int, ...]) -> dict[int, Affine]:
        modes = block_modes(ps, m.lm_layers if kind == "lm" else m.diff_layers)
        return {
            mode: scale_width([affine(ms, f"{kind}{mode}@{w}", sizes) for w in widths], widths, m.dim) for mode in modes
        }

    return ActivationFits(lm=fit("lm", LM_LENGTHS), dit=fit("dit", DIT_PATCHES), rest=rest_fit(ms))
