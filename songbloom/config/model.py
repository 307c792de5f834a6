"""Typed SongBloom configuration and named presets.

Field names follow the release YAML (``model.dim``, ``model.lm_layers`` ...), so the ``full_150s`` preset
can be checked key by key against ``songbloom_full_150s.yaml``. This module imports no torch, Lightning,
Hydra or W&B: reading a config is cheap.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from songbloom.config.release_yaml import load_release_yaml
from songbloom.text.vocab import DEFAULT_VOCAB_PATH, load_vocab_list

DIFFUSION_OBJECTIVES = ("rectified_flow", "v")
TIMESTEP_SAMPLERS = ("logit_normal", "uniform")
DIT_CFG_TYPES = ("h", "global", "none")


def _default_vocab() -> tuple[str, ...]:
    return tuple(load_vocab_list(DEFAULT_VOCAB_PATH))


def _default_attribute_dropout() -> dict[str, dict[str, float]]:
    # Order matters: the release draws one uniform per attribute in this order (text first, then wav).
    return {"text": {"lyrics": 0.0}, "wav": {"prompt_wav": 0.1}}


@dataclass
class ModelConfig:
    """Geometry and training-time knobs of the interleaved generator (release ``model.*``)."""

    # --- size
    block_size: int = 16
    latent_dim: int = 64
    dim: int = 1536
    num_heads: int = 24
    lm_layers: int = 36
    diff_layers: int = 12
    num_pitch: int = 16384
    hidden_scale: int = 4
    # --- diffusion
    time_cond_type: str = "prepend"
    timestep_features_dim: int = 256
    diffusion_objective: str = "rectified_flow"
    timestep_sampler: str = "logit_normal"
    # --- positions
    rotary_base_val: float = 20000.0
    dit_rotary_base: float = 20000.0  # hard-coded in the release DiT; independent of rotary_base_val
    rms_norm_eps: float = 1e-6
    # --- init and training dropout
    init_std: float = 0.02
    h_dropout: float = 0.05
    cfg_dropout: float = 0.1
    attribute_dropout: dict[str, dict[str, float]] = field(default_factory=_default_attribute_dropout)
    # --- conditioners
    lyric_vocab: tuple[str, ...] = field(default_factory=_default_vocab)
    lyric_max_len: int = 600
    lyric_max_sentences: int = 50
    prompt_max_len: int = 250

    def __post_init__(self) -> None:
        self.lyric_vocab = tuple(self.lyric_vocab)
        problems = [*self._size_problems(), *self._choice_problems(), *self._probability_problems()]
        if problems:
            raise ValueError("invalid SongBloom model config:\n  - " + "\n  - ".join(problems))

    def _size_problems(self) -> list[str]:
        problems = []
        for name in ("block_size", "latent_dim", "dim", "num_heads", "lm_layers", "diff_layers", "num_pitch"):
            if int(getattr(self, name)) <= 0:
                problems.append(f"model.{name} must be positive, got {getattr(self, name)}")
        if self.dim % self.num_heads:
            problems.append(f"model.dim={self.dim} is not divisible by model.num_heads={self.num_heads}")
        elif self.head_dim < 32:
            problems.append(
                f"model.dim/num_heads = {self.head_dim}: the DiT rotary embedding covers max(head_dim // 2, 32) "
                "dims, so heads need at least 32 dims (lower num_heads or raise dim)"
            )
        return problems

    def _choice_problems(self) -> list[str]:
        problems = []
        if self.diffusion_objective not in DIFFUSION_OBJECTIVES:
            problems.append(
                f"model.diffusion_objective={self.diffusion_objective!r}: choose from {DIFFUSION_OBJECTIVES}"
            )
        if self.timestep_sampler not in TIMESTEP_SAMPLERS:
            problems.append(f"model.timestep_sampler={self.timestep_sampler!r}: choose from {TIMESTEP_SAMPLERS}")
        if self.time_cond_type != "prepend":
            problems.append(f"model.time_cond_type={self.time_cond_type!r}: only 'prepend' exists in the release")
        if not self.lyric_vocab or self.lyric_vocab[0] != "":
            problems.append("model.lyric_vocab entry 0 must be '' (the pad token)")
        return problems

    def _probability_problems(self) -> list[str]:
        problems = []
        for group, attrs in self.attribute_dropout.items():
            for attr, p in attrs.items():
                if not 0.0 <= float(p) <= 1.0:
                    problems.append(f"model.attribute_dropout.{group}.{attr}={p} is not a probability")
        for name in ("h_dropout", "cfg_dropout"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                problems.append(f"model.{name}={getattr(self, name)} is not a probability")
        return problems

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def eos_id(self) -> int:
        """Sketch id of end-of-song: predicted by the classifier, never a codebook entry."""
        return self.num_pitch

    @property
    def special_id(self) -> int:
        """Sketch id used as the ignore/pad target; it has an embedding row but is never predicted."""
        return self.num_pitch + 1

    @property
    def ffn_dim(self) -> int:
        return self.dim * self.hidden_scale

    @property
    def prefix_len(self) -> int:
        """Length of the condition prefix the LM sees: [prompt latents | lyric tokens]."""
        return self.prompt_max_len + self.lyric_max_len


def sampling_problems(settings: Any, prefix: str = "") -> list[str]:
    """Problems with the sampling settings shared by :class:`InferenceConfig` and the sampler's parameters."""
    s, problems = settings, []
    if s.dit_cfg_type not in DIT_CFG_TYPES:
        problems.append(f"{prefix}dit_cfg_type={s.dit_cfg_type!r}: choose from {DIT_CFG_TYPES}")
    if s.temp < 0:
        problems.append(f"{prefix}temp={s.temp} must be >= 0")
    if s.top_k < 0:
        problems.append(f"{prefix}top_k={s.top_k} must be >= 0")
    if not 0.0 <= s.top_p <= 1.0:
        problems.append(f"{prefix}top_p={s.top_p} must be in [0, 1]")
    if s.steps <= 0:
        problems.append(f"{prefix}steps={s.steps} must be positive")
    if s.penalty_window < 0:
        problems.append(f"{prefix}penalty_window={s.penalty_window} must be >= 0")
    return problems


@dataclass
class InferenceConfig:
    """Sampling parameters (release ``inference.*``)."""

    cfg_coef: float | list[float] = 1.5
    temp: float = 0.9
    diff_temp: float = 0.95
    top_k: int = 100
    top_p: float = 0.0
    penalty_repeat: bool = True
    penalty_window: int = 50
    steps: int = 36
    dit_cfg_type: str = "h"
    use_sampling: bool = True

    def __post_init__(self) -> None:
        problems = sampling_problems(self, prefix="inference.")
        if problems:
            raise ValueError("invalid inference config:\n  - " + "\n  - ".join(problems))


@dataclass
class SongBloomConfig:
    """Everything needed to rebuild a SongBloom generator and run it like the release does."""

    model: ModelConfig = field(default_factory=ModelConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    sr: int = 48000
    max_dur: float = 150.0
    min_dur: float = 60.0
    prompt_len: float = 10.0
    lyric_processor: str = "phoneme"
    precision: str = "bf16-mixed"
    # Non-vocal sections are written as one tag per this many seconds (1 s for 150 s models, 5 s for 240 s).
    seconds_per_tag: float = 1.0
    # Files named by a release YAML (resolved absolute paths, or None when built from a preset).
    pretrained_path: str | None = None
    vae_config_path: str | None = None
    vae_ckpt_path: str | None = None

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_name(cls, name: str, **model_overrides: Any) -> SongBloomConfig:
        """Build a named preset (``tiny``, ``small``, ``full_150s``, ``full_240s``) with optional overrides."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
        cfg = copy.deepcopy(PRESETS[name])
        if model_overrides:
            cfg.model = dataclasses.replace(cfg.model, **model_overrides)
        return cfg

    @classmethod
    def from_release_dict(cls, raw: dict[str, Any]) -> SongBloomConfig:
        """Build from an already-resolved release YAML mapping (see :mod:`songbloom.config.release_yaml`)."""
        m = dict(raw.get("model") or {})
        cond = m.pop("condition_provider_cfg", {}) or {}
        m.pop("fuser_cfg", None)
        m.pop("backend", None)
        lyr = cond.get("lyrics", {}) or {}
        prm = cond.get("prompt_wav", {}) or {}
        known = {f.name for f in dataclasses.fields(ModelConfig)}
        unknown = sorted(set(m) - known)
        if unknown:
            raise ValueError(f"release config: unknown model keys {unknown}")
        kwargs = dict(m)
        if "attribute_dropout" in kwargs:
            kwargs["attribute_dropout"] = {g: dict(v or {}) for g, v in (kwargs["attribute_dropout"] or {}).items()}
        if lyr.get("vocab_list") is not None:
            kwargs["lyric_vocab"] = tuple(lyr["vocab_list"])
        if "max_len" in lyr:
            kwargs["lyric_max_len"] = int(lyr["max_len"])
        if "max_sentence_per_structure" in lyr:
            kwargs["lyric_max_sentences"] = int(lyr["max_sentence_per_structure"])
        if lyr.get("mode", "sum") != "sum":
            raise ValueError(
                f"release config: lyric conditioner mode {lyr.get('mode')!r} is not supported (only 'sum')"
            )
        if "max_len" in prm:
            kwargs["prompt_max_len"] = int(prm["max_len"])
        model = ModelConfig(**kwargs)
        inf = dict(raw.get("inference") or {})
        # max_frames is accepted by the official generate() but derived from max_dur here.
        inf.pop("max_frames", None)
        unknown = sorted(set(inf) - {f.name for f in dataclasses.fields(InferenceConfig)})
        if unknown:
            raise ValueError(f"release config: unknown inference keys {unknown}")
        if "penalty_repeat" in inf:
            inf["penalty_repeat"] = bool(inf["penalty_repeat"])
        inference = InferenceConfig(**inf)
        max_dur = float(raw.get("max_dur", 150))
        vae = raw.get("vae") or {}
        return cls(
            model=model,
            inference=inference,
            sr=int(raw.get("sr", 48000)),
            max_dur=max_dur,
            min_dur=float(raw.get("min_dur", 60)),
            prompt_len=float((raw.get("train_dataset") or {}).get("prompt_len", 10)),
            lyric_processor=str((raw.get("train_dataset") or {}).get("lyric_processor", "phoneme")),
            precision=str(raw.get("precision", "bf16-mixed")),
            seconds_per_tag=5.0 if max_dur > 200 else 1.0,
            pretrained_path=raw.get("pretrained_path"),
            vae_config_path=vae.get("vae_cfg"),
            vae_ckpt_path=vae.get("vae_ckpt"),
        )

    @classmethod
    def from_release_yaml(cls, path: str | Path) -> SongBloomConfig:
        """Load a release YAML (its ``???`` paths resolve to the YAML's own directory)."""
        return cls.from_release_dict(load_release_yaml(path))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SongBloomConfig:
        """Inverse of :meth:`to_dict` (used for configs stored inside our checkpoints)."""
        d = copy.deepcopy(d)
        model = ModelConfig(**d.pop("model"))
        inference = InferenceConfig(**d.pop("inference"))
        return cls(model=model, inference=inference, **d)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["model"]["lyric_vocab"] = list(self.model.lyric_vocab)
        return d

    def to_release_dict(self) -> dict[str, Any]:
        """A mapping in the release YAML layout (paths as ``${dynamic_path:???/...}`` placeholders)."""
        m = self.model
        fixed = {"rms_norm_eps": 1e-6, "dit_rotary_base": 20000.0}
        changed = {k: getattr(m, k) for k, v in fixed.items() if getattr(m, k) != v}
        if changed:
            raise ValueError(
                f"model settings {changed} have no release YAML key (the official code hard-codes "
                f"{ {k: fixed[k] for k in changed} }); such a model cannot be exported in the release layout"
            )
        model = {
            "block_size": m.block_size,
            "latent_dim": m.latent_dim,
            "dim": m.dim,
            "num_heads": m.num_heads,
            "lm_layers": m.lm_layers,
            "diff_layers": m.diff_layers,
            "num_pitch": m.num_pitch,
            "time_cond_type": m.time_cond_type,
            "timestep_features_dim": m.timestep_features_dim,
            "diffusion_objective": m.diffusion_objective,
            "timestep_sampler": m.timestep_sampler,
            "backend": "llama",
            "rotary_base_val": m.rotary_base_val,
            "init_std": m.init_std,
            "h_dropout": m.h_dropout,
            "condition_provider_cfg": {
                "prompt_wav": {
                    "type": "audio_tokenizer_wrapper",
                    "output_dim": "${model.dim}",
                    "audio_tokenizer": None,
                    "max_len": m.prompt_max_len,
                },
                "lyrics": {
                    "type": "phoneme_tokenizer",
                    "output_dim": "${model.dim}",
                    "vocab_list": "${load_yaml:${dynamic_path:???/vocab_g2p.yaml}}",
                    "max_len": m.lyric_max_len,
                    "max_sentence_per_structure": m.lyric_max_sentences,
                    "mode": "sum",
                },
            },
            "cfg_dropout": m.cfg_dropout,
            "attribute_dropout": copy.deepcopy(m.attribute_dropout),
            "fuser_cfg": {
                "cross_attention_pos_emb": False,
                "cross_attention_pos_emb_scale": 1,
                "sum": [],
                "prepend": ["lyrics", "prompt_wav"],
                "cross": [],
                "input_interpolate": [],
            },
        }
        if m.hidden_scale != 4:
            model["hidden_scale"] = m.hidden_scale
        return {
            "cfg_file": None,
            "precision": self.precision,
            "min_dur": _release_number(self.min_dur),
            "max_dur": _release_number(self.max_dur),
            "sr": self.sr,
            "pretrained_path": None,
            "continue_checkpoint": None,
            "train_dataset": {"lyric_processor": self.lyric_processor, "prompt_len": _release_number(self.prompt_len)},
            "vae": {"vae_cfg": None, "vae_ckpt": None, "sr": "${sr}"},
            "model": model,
            "inference": _release_inference(self.inference),
        }

    @property
    def frame_rate(self) -> float:
        """Latent frames per second (48 kHz / 1920 = 25 for the release VAE)."""
        return 25.0

    @property
    def max_frames(self) -> int:
        """Generation cap in latent frames: ``max_dur`` plus the 10 s the official infer.py adds."""
        return int((self.max_dur + 10) * self.frame_rate)


def _release_number(x: float) -> float | int:
    """Whole seconds as ints, like the release files: the official sampler slices audio with ``sr * prompt_len``
    and sizes its generation with ``max_dur * 25``, which a float breaks."""
    return int(x) if float(x).is_integer() else float(x)


# Inference keys the release YAMLs do not have; written only when they differ from the official defaults.
_UNRELEASED_INFERENCE_DEFAULTS = {"top_p": 0.0, "use_sampling": True}


def _release_inference(inf: InferenceConfig) -> dict[str, Any]:
    """``inference.*`` with the release files' keys (the official ``generate`` accepts the others as well)."""
    d = dataclasses.asdict(inf)
    for k, default in _UNRELEASED_INFERENCE_DEFAULTS.items():
        if d[k] == default:
            d.pop(k)
    return d


def _release_model(**overrides: Any) -> ModelConfig:
    return ModelConfig(**overrides)


PRESETS: dict[str, SongBloomConfig] = {
    # A few thousand parameters' worth of model per layer: CPU tests and the demo (forward well under 1 s).
    "tiny": SongBloomConfig(
        model=_release_model(
            block_size=4, latent_dim=8, dim=64, num_heads=2, lm_layers=2, diff_layers=2, num_pitch=64,
            lyric_max_len=128, prompt_max_len=25,
        ),
        inference=InferenceConfig(top_k=20, steps=8),
        precision="32-true",
        max_dur=20.0,
        min_dur=2.0,
        prompt_len=1.0,
    ),
    # 53.1 M generator parameters: the benchmark geometry of baselines.md.
    "small": SongBloomConfig(
        model=_release_model(dim=512, num_heads=8, lm_layers=8, diff_layers=4, num_pitch=1024),
    ),
    # 1,872,409,793 generator parameters: the released songbloom_full_150s(.dpo).
    "full_150s": SongBloomConfig(model=_release_model()),
    # Same network; only max_dur (and so the tag length and the generation cap) differ.
    "full_240s": SongBloomConfig(model=_release_model(), max_dur=240.0, seconds_per_tag=5.0),
}
