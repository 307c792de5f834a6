"""The interleaved generation loop: sketch tokens from the LM, one latent patch per 16 tokens from the DiT.

Per patch and song (release ``MVSA_DiTAR.generate`` / ``_sample_next_block``; docs/design/fidelity.md#sampling-loop):

1. 16 LM steps on the CFG batch ``[cond rows..., null rows...]`` with a KV cache: CFG-mixed logits, the
   repetition penalty, temperature + top-k/top-p, one draw per song; the token embedding goes to both rows.
2. One more LM step on the last token gives ``h`` (conditional rows).
3. The DiT samples the patch from noise given ``h``, the 16 sketch embeddings and the previous patch.
4. ``block_conv`` of the patch is the first LM input of the next patch.

A patch holding EOS is discarded whole, and so is a patch sampled past the length limit. Rows (songs)
finish independently; finished rows leave the batch and the KV cache.

Two RNG modes (both give the same kept tokens and latents for the same draws):

* ``exact_release_rng=False`` (default): skips wasted work. A song stops the moment it samples EOS (the
  rest of that patch and its DiT run are never computed) and the patch past the length limit is never
  sampled.
* ``exact_release_rng=True``: consumes random numbers exactly like the release, including the tokens after
  an EOS, the DiT noise of the discarded patch and the extra patch at the length limit. With the global
  RNG and one song, a seeded run then leaves the RNG where the official code leaves it, so a sequence of
  songs drawn from one seed matches the official ``infer.py`` song by song.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from songbloom.config import InferenceConfig, sampling_problems  # noqa: F401  (importable here before the move)
from songbloom.inference.dit_sampler import PatchDenoiser, StepObserver
from songbloom.inference.graphs import GraphCache, StaticDecodeStep
from songbloom.inference.sampling import (
    PENALTY_MODES,
    apply_repetition_penalty,
    cfg_mix,
    sample_tokens,
    sampling_probs,
)
from songbloom.models.conditioners import ConditionTensors
from songbloom.models.lm import KVCache
from songbloom.models.songbloom import SongBloomModel

if TYPE_CHECKING:
    from songbloom.config import SongBloomConfig

logger = logging.getLogger(__name__)


_INFERENCE_FIELDS = frozenset(f.name for f in dataclasses.fields(InferenceConfig))


class SamplingParams:
    """Generation settings: the model's ``inference`` block plus the length cap and our own switches.

    The release's sampling fields live in :class:`~songbloom.config.InferenceConfig` only; they are read
    through this object (``params.temp``) and set by keyword (``SamplingParams(temp=0.5, max_frames=64)``).
    """

    def __init__(
        self,
        inference: InferenceConfig | None = None,
        *,
        max_frames: float = 4000.0,  # release: (max_dur + 10) * 25
        penalty_mode: str = "release",  # "release" (divide by 1.1, quirks kept) | "corrected" | "none"
        exact_release_rng: bool = False,
        **inference_fields: Any,
    ) -> None:
        unknown = sorted(set(inference_fields) - {f.name for f in dataclasses.fields(InferenceConfig)})
        if unknown:
            raise TypeError(f"SamplingParams: unknown settings {unknown}")
        base = inference if inference is not None else InferenceConfig()
        if isinstance(inference_fields.get("cfg_coef", base.cfg_coef), list):
            inference_fields["cfg_coef"] = tuple(inference_fields.get("cfg_coef", base.cfg_coef))
        try:
            self.inference = dataclasses.replace(base, **inference_fields)
            problems = []
        except ValueError as e:  # InferenceConfig's own checks, reported with ours below
            self.inference, problems = base, [str(e)]
        self.max_frames = max_frames
        self.penalty_mode = penalty_mode
        self.exact_release_rng = exact_release_rng
        if penalty_mode not in PENALTY_MODES:
            problems.append(f"penalty_mode={penalty_mode!r}: choose from {PENALTY_MODES}")
        if max_frames <= 0:
            problems.append(f"max_frames={max_frames} must be positive")
        if isinstance(self.cfg_coef, Sequence) and len(self.cfg_coef) != 2:
            problems.append(f"cfg_coef={self.cfg_coef}: give one value or [LM, DiT]")
        if problems:
            raise ValueError("invalid sampling parameters:\n  - " + "\n  - ".join(problems))

    def __getattr__(self, name: str) -> Any:
        if name != "inference" and name in _INFERENCE_FIELDS:
            return getattr(self.inference, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SamplingParams) and self.as_dict() == other.as_dict()

    def __repr__(self) -> str:
        return f"SamplingParams({self.as_dict()})"

    def as_dict(self) -> dict[str, Any]:
        """Every setting, flat (for logs and provenance)."""
        return {
            **dataclasses.asdict(self.inference),
            "max_frames": self.max_frames,
            "penalty_mode": self.penalty_mode,
            "exact_release_rng": self.exact_release_rng,
        }

    @classmethod
    def from_inference_config(cls, inf: InferenceConfig, max_frames: float, **overrides: Any) -> SamplingParams:
        return cls(inf, max_frames=max_frames, **overrides)

    @classmethod
    def from_config(cls, cfg: SongBloomConfig, **overrides: Any) -> SamplingParams:
        """The release defaults of a model config: its ``inference`` block and ``(max_dur + 10) * 25`` frames."""
        return cls.from_inference_config(cfg.inference, cfg.max_frames, **overrides)

    @property
    def lm_coef(self) -> float:
        return float(self.cfg_coef[0] if isinstance(self.cfg_coef, Sequence) else self.cfg_coef)

    @property
    def dit_coef(self) -> float:
        return float(self.cfg_coef[1] if isinstance(self.cfg_coef, Sequence) else self.cfg_coef)

    def max_patches(self, block_size: int) -> int:
        """Patches kept at most: the release stops when ``1 + (P+1) * kept > max_frames / P * (P+1)``."""
        limit = self.max_frames / block_size * (block_size + 1)
        n = 0
        while 1 + (block_size + 1) * n <= limit:
            n += 1
        return n


@dataclass
class StepRecord:
    """One AR step, for hooks: ``rows`` are song indices; tensors have one row per song in that order."""

    step: int  # global AR step of these songs (patch * block_size + k)
    patch: int
    rows: list[int]
    logits: torch.Tensor  # (2n, V) raw classifier outputs [cond..., null...]
    probs: torch.Tensor | None  # (n, V) the rows given to multinomial (None when greedy)
    tokens: torch.Tensor  # (n,)


@dataclass
class PatchRecord:
    """One sampled patch (kept or not), for hooks."""

    patch: int
    rows: list[int]
    tokens: torch.Tensor  # (n, P)
    h: torch.Tensor  # (n, dim) conditional hidden vectors
    history: torch.Tensor  # (n, P, C) previous patch
    noise: torch.Tensor  # (n, P, C)
    latent: torch.Tensor  # (n, P, C) DiT output
    kept: list[bool]


@dataclass
class GenerationHooks:
    """Injection points for tests and tools; every field is optional.

    ``token_sampler(record_without_tokens, probs) -> tokens (n,)`` replaces the multinomial draw (e.g. to
    replay recorded choices); ``dit_noise(patch, rows, shape, dtype, device) -> noise`` replaces the DiT
    noise draw; ``on_step`` / ``on_patch`` observe; ``on_dit_step`` observes the Euler steps.
    """

    token_sampler: Callable[[StepRecord, torch.Tensor], torch.Tensor] | None = None
    dit_noise: Callable[[int, list[int], tuple[int, ...], torch.dtype, torch.device], torch.Tensor] | None = None
    on_step: Callable[[StepRecord], None] | None = None
    on_patch: Callable[[PatchRecord], None] | None = None
    on_dit_step: StepObserver | None = None


@dataclass
class GeneratedSong:
    """The kept output of one song."""

    tokens: torch.Tensor  # (T,) sketch ids
    latent: torch.Tensor  # (latent_dim, T) float32
    stop_reason: str  # "eos" or "max_length"
    patches_sampled: int = 0
    block_size: int = 16

    @property
    def num_frames(self) -> int:
        return int(self.tokens.shape[0])

    def release_latent(self) -> torch.Tensor:
        """The latent the release returns: an EOS in the first patch gives one patch of zeros, not nothing."""
        if self.num_frames:
            return self.latent
        return self.latent.new_zeros(self.latent.shape[0], self.block_size)


@dataclass
class _Rows:
    """Per-song state of the songs still in the batch (all lists aligned with the batch order)."""

    ids: list[int]
    generators: list[torch.Generator | None] | None
    tokens: list[list[torch.Tensor]] = field(default_factory=list)
    latents: list[list[torch.Tensor]] = field(default_factory=list)


def build_cfg_prefix(cond: ConditionTensors, null: ConditionTensors) -> torch.Tensor:
    """LM prefix of the CFG batch: (2B, L, dim) packed as ``[cond rows..., null rows...]``."""
    return torch.cat([cond.prefix(), null.prefix().to(cond.prompt.dtype)], dim=0)


def _select_cache_rows(cache: KVCache, index: torch.Tensor) -> None:
    for i in range(len(cache.keys)):
        cache.keys[i] = cache.keys[i].index_select(0, index)
        cache.values[i] = cache.values[i].index_select(0, index)


class _Generation:
    """State machine of one batched generation (see :func:`generate`)."""

    def __init__(
        self,
        model: SongBloomModel,
        prefix: torch.Tensor,
        params: SamplingParams,
        generators: Sequence[torch.Generator | None] | None,
        hooks: GenerationHooks,
        progress: Callable[[int, list[int]], None] | None,
        static_decode: bool = False,
        cuda_graphs: bool = False,
    ):
        self.m = model
        self.p = params
        self.hooks = hooks
        self.progress = progress
        cfg = model.cfg
        self.P, self.C, self.eos = cfg.block_size, cfg.latent_dim, cfg.eos_id
        self.n = prefix.shape[0] // 2
        if prefix.shape[0] != 2 * self.n:
            raise ValueError(f"the CFG prefix needs an even number of rows [cond..., null...], got {prefix.shape[0]}")
        if generators is not None and len(generators) != self.n:
            raise ValueError(f"{len(generators)} generators for {self.n} songs")
        self.dtype = model.project_in.weight.dtype
        self.device = model.project_in.weight.device
        self.prefix = prefix.to(self.dtype)
        self.max_patches = params.max_patches(self.P)
        extra = 1 if params.exact_release_rng else 0
        cache_len = prefix.shape[1] + (self.P + 1) * (self.max_patches + extra)
        self.cache = model.ar_transformer.new_cache(2 * self.n, cache_len)
        self.rows = _Rows(list(range(self.n)), list(generators) if generators is not None else None)
        self.rows.tokens = [[] for _ in range(self.n)]
        self.rows.latents = [[] for _ in range(self.n)]
        self.results: dict[int, GeneratedSong] = {}
        self.denoiser = PatchDenoiser(model, params.steps, params.dit_cfg_type, params.dit_coef)
        self.prev = torch.zeros(self.n, self.P, self.C, dtype=self.dtype, device=self.device)
        self.static = StaticDecodeStep(model, cache_len) if (static_decode or cuda_graphs) else None
        self.graphs = GraphCache() if cuda_graphs else None
        self._buffers: dict[object, list[torch.Tensor]] = {}

    # ------------------------------------------------------------------ row bookkeeping
    def _finish(self, pos: int, reason: str, patches_sampled: int) -> None:
        song = self.rows.ids[pos]
        toks, lats = self.rows.tokens[pos], self.rows.latents[pos]
        tokens = torch.cat(toks) if toks else torch.zeros(0, dtype=torch.long, device=self.device)
        latent = torch.cat(lats, dim=0).T if lats else torch.zeros(self.C, 0, device=self.device)
        self.results[song] = GeneratedSong(
            tokens.cpu(), latent.float().cpu(), reason, patches_sampled=patches_sampled, block_size=self.P
        )

    def _keep(self, keep: list[int], *tensors: torch.Tensor | None) -> list[torch.Tensor | None]:
        """Drop finished rows from the batch, the cache and the given per-song tensors (n rows or 2n rows)."""
        n = len(self.rows.ids)
        if len(keep) == n:
            return list(tensors)
        idx = torch.tensor(keep, dtype=torch.long, device=self.device)
        _select_cache_rows(self.cache, torch.cat([idx, idx + n]))
        if self.graphs is not None:
            self.graphs.clear()  # captured graphs point at the old cache tensors
        self.rows.ids = [self.rows.ids[i] for i in keep]
        if self.rows.generators is not None:
            self.rows.generators = [self.rows.generators[i] for i in keep]
        self.rows.tokens = [self.rows.tokens[i] for i in keep]
        self.rows.latents = [self.rows.latents[i] for i in keep]
        self.prev = self.prev.index_select(0, idx)
        out = []
        for t in tensors:
            if t is None:
                out.append(None)
            elif t.shape[0] == 2 * n:
                out.append(t.index_select(0, torch.cat([idx, idx + n])))
            else:
                out.append(t.index_select(0, idx))
        return out

    # ------------------------------------------------------------------ pieces
    def _lm(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.m.ar_transformer(inputs, self.cache)[:, -1]

    def _static_buffers(self, key: object, like: list[torch.Tensor]) -> list[torch.Tensor]:
        bufs = self._buffers.get(key)
        if bufs is None:
            bufs = [torch.empty_like(t) for t in like]
            self._buffers[key] = bufs
        for b, t in zip(bufs, like, strict=True):
            b.copy_(t)
        return bufs

    def _lm_step(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One new token per row -> (hidden (2n, dim), logits (2n, V))."""
        if self.static is None:
            hidden = self._lm(inputs)
            return hidden, self.m.classify(hidden)
        position = self.cache.length
        window = self.static.window(position, self.cache.max_len)
        if self.graphs is None:
            pos = torch.tensor([position], dtype=torch.long, device=self.device)
            hidden, logits = self.static(inputs, pos, self.cache, window)
        else:
            key = ("lm", inputs.shape[0])
            if key not in self._buffers:
                self._buffers[key] = [torch.empty_like(inputs), torch.zeros(1, dtype=torch.long, device=self.device)]
            x, p = self._buffers[key]
            x.copy_(inputs)
            p.fill_(position)  # no host sync: the graph reads the position from this device tensor
            out = self.graphs.run((*key, window), lambda: self.static(x, p, self.cache, window))
            hidden, logits = (t.clone() for t in out)
        self.cache.length += 1
        return hidden, logits

    def _sample_patch(self, noise: torch.Tensor, h: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        temp = self.p.diff_temp
        if self.graphs is None or self.hooks.on_dit_step is not None:
            return self.denoiser.sample(noise, h, s, self.prev, temp, self.hooks.on_dit_step)
        bufs = self._static_buffers(("dit", noise.shape[0], h.shape[0]), [noise, h, s, self.prev])
        key = ("dit", noise.shape[0], h.shape[0])
        return self.graphs.run(key, lambda: self.denoiser.sample(*bufs, temp)).clone()

    def _penalty_pool(self) -> torch.Tensor | None:
        p = self.p
        if not p.penalty_repeat or p.penalty_mode == "none" or not self.rows.tokens[0]:
            return None  # no pool until a patch has been kept (docs/design/fidelity.md#penalty-pool-first-patch)
        kept = torch.stack([torch.cat(t) for t in self.rows.tokens])
        pool = kept[:, -p.penalty_window :] if p.penalty_window > 0 else kept
        if pool.shape[1] < p.penalty_window:
            pad = pool.new_full((pool.shape[0], p.penalty_window - pool.shape[1]), self.eos)
            pool = torch.cat([pad, pool], dim=1)
        return pool

    def _draw_tokens(self, record: StepRecord, mixed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        p = self.p
        if not (p.use_sampling and p.temp > 0.0):
            return mixed.argmax(dim=-1), None
        probs, index_map = sampling_probs(mixed, p.temp, p.top_k, p.top_p)
        if self.hooks.token_sampler is not None:
            return self.hooks.token_sampler(record, probs).to(self.device), probs
        return sample_tokens(probs, index_map, self.rows.generators), probs

    def _dit_noise(self, patch: int) -> torch.Tensor:
        n = len(self.rows.ids)
        shape = (n, self.P, self.C)
        if self.hooks.dit_noise is not None:
            return self.hooks.dit_noise(patch, list(self.rows.ids), shape, self.dtype, self.device).to(self.dtype)
        if self.rows.generators is None:
            return torch.randn(shape, dtype=self.dtype, device=self.device)
        one = (1, self.P, self.C)
        return torch.cat(
            [torch.randn(one, dtype=self.dtype, device=self.device, generator=g) for g in self.rows.generators]
        )

    # ------------------------------------------------------------------ main loop
    def _drop_ended(self, hit: torch.Tensor, patch: int, inputs, tokens, pool):
        """Fast mode: rows that drew EOS end here (their patch would be discarded anyway)."""
        n = hit.shape[0]
        stop = hit.tolist()
        for pos in range(n):
            if stop[pos]:
                self._finish(pos, "eos", patch + 1)
        keep = [i for i in range(n) if not stop[i]]
        return self._keep(keep, inputs, tokens, pool)

    def _sketch_patch(self, inputs: torch.Tensor, patch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The P sketch tokens of one patch for every running row: (next LM inputs, tokens (n, P))."""
        m, p, P = self.m, self.p, self.P
        exact = p.exact_release_rng
        n = len(self.rows.ids)
        pool = self._penalty_pool()
        tokens = torch.zeros(n, P, dtype=torch.long, device=self.device)
        for k in range(P):
            if patch == 0 and k == 0:  # the prefix + BOS chunk
                logits = m.classify(self._lm(inputs))
            else:
                _, logits = self._lm_step(inputs)
            mixed = cfg_mix(logits[:n], logits[n:], p.lm_coef)
            mixed = apply_repetition_penalty(mixed, pool, m.cfg.num_pitch, p.penalty_mode)
            record = StepRecord(patch * P + k, patch, list(self.rows.ids), logits, None, torch.empty(0))
            tok, record.probs = self._draw_tokens(record, mixed)
            record.tokens = tok
            if self.hooks.on_step is not None:
                self.hooks.on_step(record)
            tokens[:, k] = tok
            if pool is not None:
                pool = torch.cat([pool, tok[:, None]], dim=1)[:, 1:]
            emb = m.embed_sketch(tok)[:, None]
            inputs = torch.cat([emb, emb])
            hit = tok == self.eos
            if not exact and bool(hit.any()):
                inputs, tokens, pool = self._drop_ended(hit, patch, inputs, tokens, pool)
                n = tokens.shape[0]
                if n == 0:
                    break
        return inputs, tokens

    def _acoustic_patch(self, inputs: torch.Tensor, tokens: torch.Tensor, patch: int) -> torch.Tensor:
        """The DiT latents of one patch; rows past EOS or the length limit end. The next LM inputs."""
        m, p, P = self.m, self.p, self.P
        n = tokens.shape[0]
        h_all, _ = self._lm_step(inputs)
        noise = self._dit_noise(patch)
        h = h_all if p.dit_cfg_type == "global" else h_all[:n]
        s = m.embed_sketch(tokens)
        latent = self._sample_patch(noise, h, s)
        over_limit = 1 + (P + 1) * patch > p.max_frames / P * (P + 1)
        has_eos = (tokens == self.eos).any(dim=1).tolist()
        kept_flags = [not (over_limit or e) for e in has_eos]
        if self.hooks.on_patch is not None:
            self.hooks.on_patch(
                PatchRecord(patch, list(self.rows.ids), tokens, h_all[:n], self.prev, noise, latent, kept_flags)
            )
        for pos in range(n):
            if kept_flags[pos]:
                self.rows.tokens[pos].append(tokens[pos])
                self.rows.latents[pos].append(latent[pos])
            else:
                self._finish(pos, "eos" if has_eos[pos] else "max_length", patch + 1)
        self.prev = latent
        acoustic = m.acoustic_tokens(latent.transpose(1, 2)).to(self.dtype)  # (n, 1, dim)
        inputs = torch.cat([acoustic, acoustic])
        keep = [i for i in range(n) if kept_flags[i]]
        (inputs,) = self._keep(keep, inputs)
        return inputs

    def run(self) -> list[GeneratedSong]:
        first = self.m.bos_token.to(self.dtype).expand(2 * self.n, 1, -1)
        inputs = torch.cat([self.prefix, first], dim=1)
        patch = 0
        while self.rows.ids:
            if not self.p.exact_release_rng and patch >= self.max_patches:
                for pos in range(len(self.rows.ids)):
                    self._finish(pos, "max_length", patch)
                break
            inputs, tokens = self._sketch_patch(inputs, patch)
            if not self.rows.ids:
                break
            inputs = self._acoustic_patch(inputs, tokens, patch)
            patch += 1
            if self.progress is not None:
                self.progress(patch, list(self.rows.ids))
        return [self.results[i] for i in range(self.n)]


@torch.inference_mode()
def generate(
    model: SongBloomModel,
    cond: ConditionTensors,
    null: ConditionTensors,
    params: SamplingParams,
    *,
    generators: Sequence[torch.Generator | None] | None = None,
    hooks: GenerationHooks | None = None,
    progress: Callable[[int, list[int]], None] | None = None,
    cuda_graphs: bool | None = None,
    static_decode: bool | None = None,
) -> list[GeneratedSong]:
    """Generate B songs at once.

    Args:
        model: the generator, in eval mode, in its inference dtype (fp32 or bf16).
        cond, null: conditional and null condition tensors, B rows each (see :func:`encode_cfg_conditions`).
        params: sampling settings.
        generators: one ``torch.Generator`` per song on the model's device (song i's draws then do not depend
            on the other songs of the batch), or ``None`` for the global RNG (batch 1 + a seed reproduces a
            seeded official run).
        hooks: optional injection/observation points (tests replay recorded draws through them).
        progress: called after every patch with (patches done, indices of the songs still running).
        cuda_graphs: replay the LM step and the DiT patch sampler as CUDA graphs (default: on for CUDA models).
            Capture failures fall back to eager execution.
        static_decode: use the graph-ready LM step without graphs (default: same as ``cuda_graphs``).
    Returns: one :class:`GeneratedSong` per song, in input order.
    """
    if model.training:
        raise RuntimeError("generate() needs the model in eval mode (call model.eval())")
    on_cuda = model.project_in.weight.device.type == "cuda"
    graphs = on_cuda if cuda_graphs is None else (bool(cuda_graphs) and on_cuda)
    static = graphs if static_decode is None else bool(static_decode)
    prefix = build_cfg_prefix(cond, null)
    run = _Generation(model, prefix, params, generators, hooks or GenerationHooks(), progress, static, graphs)
    return run.run()


def encode_cfg_conditions(
    model: SongBloomModel,
    lyric_ids: Sequence[Sequence[int] | torch.Tensor],
    prompt_latents: torch.Tensor | None,
) -> tuple[ConditionTensors, ConditionTensors]:
    """Condition tensors of B songs and of their null rows, as the release builds them for one song.

    ``prompt_latents`` (B, latent_dim, F) are each song's own prompt latent, zero-padded to the longest
    (a missing prompt is all zeros). Each row gets a full-length mask, which is what a lone prompt gets in
    the release; padded frames project to zero (no bias). The null rows have the null lyric (one id-0
    token) and an all-zero prompt.
    """
    b = len(lyric_ids)
    cond = model.encode_conditions(list(lyric_ids), prompt_latents, None, None)
    null = model.encode_conditions([None] * b, None)
    return cond, null
