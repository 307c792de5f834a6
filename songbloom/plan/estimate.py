"""Compose the peak: static bytes (exact, from the meta model) + probed activations + analytic extras.

Training step, per GPU (``W`` ranks sharding with FSDP; ``B`` rows; ``T`` LM tokens per row; ``n`` patches)::

    base      = params / s_p + gathered + optimizer / s_o + EMA (+ grads / s_g while accumulating)
    forward   = base + sum_blocks fwd_in(x)    + max_blocks (fwd_peak - fwd_in)(x)
    backward  = base + sum_blocks fwd_after(x) + max_blocks bwd_peak(x)            (+ math attention)
    step      = params / s_p + optimizer / s_o + EMA + grads / s_g + AdamW temporaries
    training  = max(forward, backward, step)

where ``x`` is ``B * T`` for LM blocks and ``B * n`` for DiT blocks (each fitted ``c + a * x`` by
:mod:`songbloom.plan.probe`), the rest of the generator is ``c0 + B * (c1 + a * n)``, gradients are the
trainable tensors in their dtype, AdamW holds two states per trainable value in its dtype, EMA shadows are
fp32 (never sharded: ``TrainableEMA`` holds full tensors), and the AdamW step's temporaries are one copy of the
trainable bytes on a GPU (``foreach``: ``sqrt`` of every ``exp_avg_sq`` at once) or two copies of the largest
tensor on a CPU (per-tensor loop). FSDP divides params (FULL_SHARD), grads and optimizer states by ``W``
(``s_* = W``) and gathers about two blocks plus the unwrapped root at a time in the compute dtype.

Math attention (not flash/efficient) keeps the softmax of each layer: ``B * heads * T^2`` values per LM layer
(``B * n * heads * L_dit^2`` per DiT block) in the activation dtype, plus twice one layer's worth in backward.

Generation during training (demo songs, rank 0) peaks at params + optimizer + EMA (+ the EMA swap copy) + the
KV cache (``lm_layers * 2 * 2 rows (CFG) * dim * (prefix + 1 + (P+1) * n_demo)`` in the LM's dtype) + the VAE's
weights and a decode working set of four of its largest activation (channels x samples, fp32). Validation is a
no-grad forward at the crop: base + the probed forward peaks of one block of each kind and of the rest.

On a GPU add the CUDA context (:data:`CUDA_CONTEXT_BYTES`, CUDA 12 with lazy module loading, cuBLAS workspace)
and the caching allocator's reserve above the allocated peak (:data:`ALLOCATOR_RESERVE` of it: block rounding
and fragmentation). Both are assumptions until a GPU measures them; the CPU validation covers the allocated
peak (``tests/plan``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from songbloom.config.run import RunConfig
from songbloom.plan.probe import ActivationFits, Measure, probe_activations
from songbloom.plan.settings import PlanSettings, from_run
from songbloom.plan.static import StaticBytes, meta_model, narrow_meta_model, static_bytes

GiB = 2**30
CUDA_CONTEXT_BYTES = 512 * 2**20
ALLOCATOR_RESERVE = 0.10


@dataclass(frozen=True)
class Row:
    name: str
    bytes: float
    note: str = ""


@dataclass
class MemoryPlan:
    """Rows of the estimate and the peak per GPU; ``fits(gb)`` compares with a card."""

    settings: str
    rows: list[Row] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)
    total: float = 0.0
    params_total: int = 0
    params_trainable: int = 0

    def fits(self, card_gb: float) -> bool:
        return self.total <= card_gb * 1e9

    def to_dict(self) -> dict:
        return {
            "settings": self.settings,
            "total_bytes": self.total,
            "total_gb": self.total / 1e9,
            "phases": dict(self.phases),
            "rows": [{"name": r.name, "bytes": r.bytes, "note": r.note} for r in self.rows],
            "params_total": self.params_total,
            "params_trainable": self.params_trainable,
        }


def _sharding(ps: PlanSettings) -> tuple[int, int]:
    """(params divisor, grads/optimizer divisor)."""
    if not ps.fsdp or ps.world_size <= 1:
        return 1, 1
    w = ps.world_size
    return (1 if ps.sharding.upper() == "SHARD_GRAD_OP" else w), w


@dataclass(frozen=True)
class _Static:
    params: float
    gathered: float
    grads: float
    optimizer: float
    ema: float
    opt_temp: float


def _static(ps: PlanSettings, st: StaticBytes) -> _Static:
    sp, sg = _sharding(ps)
    gathered = 0.0
    if ps.fsdp and ps.world_size > 1:
        compute_bytes = 2 if ps.autocast or ps.bf16_true else 4
        per_value = compute_bytes / (st.params / max(st.total_numel, 1))
        gathered = 2 * st.largest_block * per_value
    opt_temp = st.trainable / sg if ps.on_gpu else 2 * st.largest_trainable
    scale = 0.0 if ps.cpu_offload else 1.0
    return _Static(
        params=scale * st.params / sp,
        gathered=gathered,
        grads=scale * st.trainable / sg,
        optimizer=scale * 2 * st.trainable / sg,
        ema=4.0 * st.trainable_numel if ps.ema else 0.0,
        opt_temp=scale * opt_temp,
    )


def _blocks(fits: ActivationFits, ps: PlanSettings) -> list[tuple[int, Measure]]:
    """(count, measure at this run's size) per block kind and checkpointing mode, and the rest (count 1)."""
    from songbloom.plan.probe import block_modes

    m = ps.songbloom.model
    out = []
    for mode, count in block_modes(ps, m.lm_layers).items():
        out.append((count, fits.lm[mode].at(ps.batch * ps.lm_tokens)))
    for mode, count in block_modes(ps, m.diff_layers).items():
        out.append((count, fits.dit[mode].at(ps.batch * ps.patches)))
    out.append((1, fits.rest.at(ps.batch, ps.patches)))
    return out


def _math_attention(ps: PlanSettings) -> tuple[float, float]:
    """(retained, backward transient) of math attention's softmax, on top of the probed flash kernel."""
    if ps.attention != "math":
        return 0.0, 0.0
    m = ps.songbloom.model
    act = 2 if ps.autocast or ps.bf16_true else 4
    lm = ps.batch * m.num_heads * ps.lm_tokens**2 * act
    dit = ps.batch * ps.patches * m.num_heads * ps.dit_tokens**2 * act
    return m.lm_layers * lm + m.diff_layers * dit, 2 * max(lm, dit)


def _training_phases(ps: PlanSettings, s: _Static, fits: ActivationFits) -> tuple[dict[str, float], dict[str, float]]:
    blocks = _blocks(fits, ps)
    base = s.params + s.gathered + s.optimizer + s.ema + (s.grads if ps.accumulate > 1 else 0.0)
    fwd_in = sum(c * b.fwd_in for c, b in blocks)
    fwd_after = sum(c * b.fwd_after for c, b in blocks)
    math_kept, math_bwd = _math_attention(ps)
    fwd_extra = max(b.fwd_peak - b.fwd_in for _, b in blocks)
    bwd_extra = max(b.bwd_peak for _, b in blocks) + math_bwd
    phases = {
        "forward": base + fwd_in + math_kept + fwd_extra,
        "backward": base + fwd_after + math_kept + bwd_extra,
        "optimizer step": s.params + s.gathered + s.optimizer + s.ema + s.grads + s.opt_temp,
    }
    parts = {
        "activations": fwd_after + math_kept,
        "backward working set": bwd_extra,
        "forward only": fwd_in - fwd_after,
    }
    return phases, parts


def _vae_bytes(ps: PlanSettings, seconds: float) -> tuple[float, float]:
    """(weights, decode working set) of the VAE the demo decodes with (release VAE, else the demo's tiny one)."""
    import torch

    from songbloom.models.vae import OobleckVAE
    from songbloom.models.vae_config import VAEConfig

    cfg = VAEConfig.release() if ps.release_vae else VAEConfig.tiny()
    with torch.device("meta"):
        vae = OobleckVAE(cfg)
    weights = sum(p.numel() * 4 for p in vae.parameters())
    dec = cfg.decoder
    samples = seconds * cfg.sample_rate
    mults, widest, rate = (1, *dec.c_mults), 0.0, float(samples)
    for k, mult in enumerate(mults):  # stage k runs at samples / prod(strides[:k]) with channels * mult
        widest = max(widest, dec.channels * mult * rate)
        rate /= dec.strides[k] if k < len(dec.strides) else 1
    return float(weights), 4.0 * widest * 4


def _generation_phase(ps: PlanSettings, s: _Static, st: StaticBytes) -> float:
    if ps.demo_seconds <= 0:
        return 0.0
    m = ps.songbloom.model
    patches = int(ps.demo_seconds * ps.songbloom.frame_rate) // m.block_size
    kv_dtype = 2 if ps.bf16_true else 4
    kv = m.lm_layers * 2 * 2 * m.dim * (m.prefix_len + 1 + (m.block_size + 1) * patches) * kv_dtype
    weights, decode = _vae_bytes(ps, ps.demo_seconds)
    swap = st.trainable if ps.ema and ps.demo_use_ema else 0.0
    return s.params + s.gathered + s.optimizer + s.ema + swap + kv + weights + decode


def _validation_phase(ps: PlanSettings, s: _Static, fits: ActivationFits) -> float:
    if not ps.validation:
        return 0.0
    blocks = _blocks(fits, ps)
    return s.params + s.gathered + s.optimizer + s.ema + sum(b.fwd_peak for _, b in blocks)


def compose(ps: PlanSettings, st: StaticBytes, fits: ActivationFits) -> MemoryPlan:
    s = _static(ps, st)
    phases, parts = _training_phases(ps, s, fits)
    phases["validation"] = _validation_phase(ps, s, fits)
    phases["demo generation"] = _generation_phase(ps, s, st)
    allocated = max(phases.values())
    context = CUDA_CONTEXT_BYTES if ps.on_gpu else 0.0
    reserve = ALLOCATOR_RESERVE * allocated if ps.on_gpu else 0.0
    peak_phase = max(phases, key=lambda k: phases[k])
    rows = [
        Row("parameters", s.params, "sharded" if s.params < st.params and not ps.cpu_offload else ""),
        Row("FSDP gathered blocks", s.gathered, "two blocks + root in the compute dtype" if s.gathered else ""),
        Row("gradients", s.grads, "trainable tensors"),
        Row("optimizer states", s.optimizer, "AdamW: 2 per trainable value"),
        Row("EMA", s.ema, "fp32 shadows of the trainable tensors" if ps.ema else "off"),
        Row("activations", parts["activations"], "held at the start of backward"),
        Row("backward working set", parts["backward working set"], "largest block's backward"),
        Row("optimizer-step temporaries", s.opt_temp, "AdamW foreach" if ps.on_gpu else "AdamW per tensor"),
        Row("allocated peak", allocated, f"phase: {peak_phase}"),
        Row("CUDA context", context, "assumed" if ps.on_gpu else "CPU run"),
        Row(
            "allocator reserve",
            reserve,
            f"{ALLOCATOR_RESERVE:.0%} of the allocated peak (assumed)" if ps.on_gpu else "",
        ),
    ]
    return MemoryPlan(
        settings=ps.describe(),
        rows=rows,
        phases=phases,
        total=allocated + context + reserve,
        params_total=st.total_numel,
        params_trainable=st.trainable_numel,
    )


def estimate(rc: RunConfig, *, attention: str = "flash", seconds: float | None = None) -> MemoryPlan:
    """The peak memory per GPU of the run ``rc`` describes (see the module docstring for the formula)."""
    ps = from_run(rc, attention=attention, seconds=seconds)
    model = meta_model(rc, ps)
    fits = probe_activations(model, ps, narrow=lambda width: narrow_meta_model(rc, ps, width))
    return compose(ps, static_bytes(model), fits)
