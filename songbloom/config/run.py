"""The typed run config: one dataclass per block of ``conf/train.yaml``, parsed once by ``songbloom.training.run``.

``parse_run_config(c)`` turns the resolved config (a plain dict) into a :class:`RunConfig` and reports every
problem at once in one :class:`RunConfigError`: a misspelt key names its block and the block's valid keys.

Blocks that name a ``_target_`` (``data``, ``logger``, ``strategy`` and each ``callbacks`` entry) stay mappings
here; ``songbloom.training.instantiate`` checks their keys against the target and builds them, and only for the
config composed from ``conf/`` and the command line. Configs stored in run dirs, checkpoints and exports are
data: nothing in this module (or in those readers) imports or calls what they name. Model, init and LoRA are
plain typed data. This module imports no torch and no Lightning.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

TARGET_KEY = "_target_"
SIGTERM_POLICIES = ("requeue_near_time_limit", "requeue", "checkpoint", "ignore")
INIT_SOURCES = ("scratch", "release", "export")
RECOVERED_TABLES_MODES = ("frozen", "low_lr", "lora")
"""``trainable.recovered_tables``: how a LoRA run keeps sketch tables its recovered codebook was made for."""

# lightning.Trainer's keyword arguments (lightning 2.5); the trainer block passes through to it.
# `logger`, `callbacks`, `plugins`, `default_root_dir` and `enable_checkpointing` are set by the run itself.
TRAINER_ARGS = (
    "accelerator", "strategy", "devices", "num_nodes", "precision", "fast_dev_run", "max_epochs",
    "min_epochs", "max_steps", "min_steps", "max_time", "limit_train_batches", "limit_val_batches",
    "limit_test_batches", "limit_predict_batches", "overfit_batches", "val_check_interval",
    "check_val_every_n_epoch", "num_sanity_val_steps", "log_every_n_steps", "enable_progress_bar",
    "enable_model_summary", "accumulate_grad_batches", "gradient_clip_val", "gradient_clip_algorithm",
    "deterministic", "benchmark", "inference_mode", "use_distributed_sampler", "profiler", "detect_anomaly",
    "barebones", "sync_batchnorm", "reload_dataloaders_every_n_epochs", "enable_autolog_hparams",
    "model_registry",
)  # fmt: skip
TRAINER_SET_BY_RUN = ("logger", "callbacks", "plugins", "default_root_dir", "enable_checkpointing")


class RunConfigError(ValueError):
    """Every problem of a run config, one per line."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        lines = "\n  - ".join(problems)
        super().__init__(f"the run config has {len(problems)} problem(s):\n  - {lines}")


@dataclass(frozen=True)
class PathsConfig:
    root_dir: str = "."
    runs_dir: str = "outputs/runs"
    data_dir: str = "data"


@dataclass(frozen=True)
class InitConfig:
    source: str = "scratch"
    release_name: str = "songbloom_full_150s"
    release_dir: str | None = None
    local_only: bool = True
    export_path: str | None = None

    def check(self) -> list[str]:
        if self.source not in INIT_SOURCES:
            return [f"init.source={self.source!r}: choose {', '.join(INIT_SOURCES)}"]
        return []


@dataclass(frozen=True)
class SketchConfig:
    codebook_path: str | None = None
    required: bool = False

    def check(self) -> list[str]:
        if self.required and not self.codebook_path:
            return [
                "sketch.codebook_path is required for this experiment: the shards' sketch tokens come from a "
                "codebook you train with `python -m songbloom.sketch train ...`; pass sketch.codebook_path=<file>"
            ]
        return []


@dataclass(frozen=True)
class TextConfig:
    language: str | None = None


@dataclass(frozen=True)
class TrainableConfig:
    sketch_embedding: Any = "auto"
    lyric_embedding: Any = "auto"
    extra_regex: str | None = None
    # With a codebook recovered from the init weights' own sketch tables (``sketch_embedding: auto``):
    # frozen | low_lr | lora; see songbloom.building.sketch_tables.
    recovered_tables: str = "frozen"

    def check(self) -> list[str]:
        problems = []
        if self.sketch_embedding not in ("auto", True, False):
            problems.append(f"trainable.sketch_embedding={self.sketch_embedding!r}: choose auto, true or false")
        if self.recovered_tables not in RECOVERED_TABLES_MODES:
            problems.append(
                f"trainable.recovered_tables={self.recovered_tables!r}: choose {', '.join(RECOVERED_TABLES_MODES)}"
            )
        return problems


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-4
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    schedule: str = "cosine"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    # Tensors trained in full beside LoRA adapters (``trainable.*``): their own rate and decay (None: lr and the
    # usual decay rule); see songbloom.training.optim.parameter_groups.
    fully_trained_lr: float | None = None
    fully_trained_weight_decay: float | None = None
    # Sketch tables kept from the base with trainable.recovered_tables=low_lr (None: lr / 10); never decayed.
    recovered_tables_lr: float | None = None


@dataclass(frozen=True)
class TrainingConfig:
    flow_loss_weight: float = 0.1
    condition_dropout: bool = True
    dropout_granularity: str = "sample"
    dropout_seed: int = 1234
    ema: bool = False
    ema_decay: float = 0.999
    gradient_checkpointing: Any = "none"
    save_frozen_base: bool = True
    track_grad_coverage: bool = False
    sample_latents: bool = True
    validation_seed: int = 0
    # With trainer.max_steps unset: max_steps = target_epochs x optimizer steps per epoch (songbloom.training.epochs).
    target_epochs: float | None = None
    memorisation_warning_epochs: float = 30.0  # more epochs than this over the training set: a warning
    optim: OptimConfig = field(default_factory=OptimConfig)


@dataclass(frozen=True)
class ExportConfig:
    enabled: bool = True
    merge_lora: bool = True
    release_format: bool = True
    peft_adapter: bool = True
    name: str | None = None


@dataclass(frozen=True)
class DemoConfig:
    enabled: bool = False
    prepare_data: bool = False
    num_songs: int = 24
    song_seconds: Any = (6.0, 10.0)
    codebook_size: int | None = None
    generate: bool = False
    generate_seconds: float = 4.0
    print_paths: bool = False
    seed: int = 0


@dataclass(frozen=True)
class ModelPresetConfig:
    preset: str = "tiny"
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LoraConfig:
    """``conf/lora/*.yaml``: a ``preset`` *or* explicit ``targets`` (never both), plus the adapter settings."""

    preset: str | None = "none"
    targets: tuple[str, ...] | None = None
    rank: int = 16
    alpha: float = 32
    dropout: float = 0.05
    use_rslora: bool = False
    use_dora: bool = False
    base_dtype: str | None = None
    extra_target_regex: str | None = None
    exclude_regex: str | None = None
    layers: tuple[int, ...] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.targets) or self.preset not in (None, "none") or bool(self.extra_target_regex)

    def check(self) -> list[str]:
        if self.preset is not None and self.targets is not None:
            return [
                f"lora.preset={self.preset} and lora.targets={list(self.targets)} are both set, and neither may "
                "silently win: pick a preset (lora=<name>) or list the sub-networks (lora.preset=null "
                "lora.targets=[...])"
            ]
        if self.preset is None and self.targets is None and not self.extra_target_regex:
            return ["lora: neither lora.preset nor lora.targets is set; pick lora=<name> or lora.targets=[...]"]
        return []

    def describe(self) -> str:
        if not self.enabled:
            return "LoRA off: every generator tensor trains"
        what = f"preset {self.preset}" if self.targets is None else f"targets {list(self.targets)}"
        return f"LoRA on ({what}, rank {self.rank}, alpha {self.alpha:g})"


@dataclass(frozen=True)
class PreemptionConfig:
    """``preemption:``: checkpoint-and-requeue on a signal (see docs/slurm.md)."""

    enabled: bool = True
    signal: str = "auto"  # USR1, USR2, SIGUSR1, a number, or auto (USR1; USR2 under the submitit launcher)
    requeue: Any = "auto"  # auto | true | false
    on_sigterm: str = "requeue_near_time_limit"
    time_limit_margin_s: float = 300.0
    check_every_n_steps: int = 1

    def check(self) -> list[str]:
        out = []
        if self.on_sigterm not in SIGTERM_POLICIES:
            out.append(f"preemption.on_sigterm={self.on_sigterm!r}: choose from {', '.join(SIGTERM_POLICIES)}")
        if str(self.requeue).lower() not in ("auto", "true", "false"):
            out.append(f"preemption.requeue={self.requeue!r}: choose auto, true or false")
        sig = str(self.signal).strip().upper().removeprefix("SIG")
        if sig in ("TERM", "KILL", "STOP", "15", "9", "19"):
            out.append(f"preemption.signal={self.signal}: use a signal sent before the end (USR1/USR2); "
                       "SIGTERM is handled by preemption.on_sigterm")
        return out


@dataclass(frozen=True)
class RunConfig:
    """The whole run config, typed. Blocks with a ``_target_`` stay mappings (see the module docstring)."""

    paths: PathsConfig
    model: ModelPresetConfig
    data: Mapping[str, Any]
    trainer: Mapping[str, Any]
    experiment_name: str | None = None
    run_name: str | None = None
    resume: Any = "auto"
    ckpt_path: str | None = None  # the lightning-hydra-template name of resume=<file>
    allow_config_change: bool = False
    seed: int = 0
    num_threads: int | None = None
    init: InitConfig = field(default_factory=InitConfig)
    sketch: SketchConfig = field(default_factory=SketchConfig)
    text: TextConfig = field(default_factory=TextConfig)
    trainable: TrainableConfig = field(default_factory=TrainableConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    preemption: PreemptionConfig = field(default_factory=PreemptionConfig)
    strategy: Mapping[str, Any] | None = None
    logger: Mapping[str, Any] | None = None
    callbacks: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def target_blocks(self) -> dict[str, Mapping[str, Any]]:
        """``{"data": ..., "logger": ..., "strategy": ..., "callbacks.<name>": ...}`` (the ones that are set)."""
        out: dict[str, Mapping[str, Any]] = {"data": self.data}
        if self.logger:
            out["logger"] = self.logger
        if self.strategy:
            out["strategy"] = self.strategy
        out.update({f"callbacks.{k}": v for k, v in self.callbacks.items() if v})
        return out


_BLOCK_TYPES: dict[str, type] = {
    "paths": PathsConfig,
    "model": ModelPresetConfig,
    "init": InitConfig,
    "sketch": SketchConfig,
    "text": TextConfig,
    "trainable": TrainableConfig,
    "training": TrainingConfig,
    "export": ExportConfig,
    "demo": DemoConfig,
    "lora": LoraConfig,
    "preemption": PreemptionConfig,
}
_TOP_KEYS = {f.name for f in dataclasses.fields(RunConfig)}


def _unknown(block: str, given: Mapping[str, Any], valid: list[str]) -> list[str]:
    extra = sorted(set(given) - set(valid))
    if not extra:
        return []
    return [f"{block}: unknown key(s) {extra}; valid keys: {sorted(valid)}"]


def _as_tuple(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def parse_block(cls: type, block: str, value: Any, problems: list[str] | None) -> Any:
    """``cls(**value)`` for a dataclass block, nested blocks included; problems are appended, not raised.

    ``problems=None`` reads leniently (a stored config): keys ``cls`` does not know are ignored, no check runs.
    """
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        if problems is not None:
            problems.append(f"{block}: expected a mapping of keys, got {value!r}")
        return cls()
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if problems is not None:
        problems += _unknown(block, value, list(fields))
    kwargs = {}
    for name, v in value.items():
        if name not in fields:
            continue
        sub = fields[name].default_factory  # type: ignore[misc]
        if sub is not dataclasses.MISSING and dataclasses.is_dataclass(sub):
            v = parse_block(sub, f"{block}.{name}", v, problems)  # type: ignore[arg-type]
        kwargs[name] = _as_tuple(v)
    obj = cls(**kwargs)
    if problems is not None and hasattr(obj, "check"):
        problems += obj.check()
    return obj


TargetCheck = Callable[[str, Mapping[str, Any]], list[str]]


def _target_block(
    block: str, value: Any, problems: list[str], check: TargetCheck | None, *, optional: bool
) -> Mapping[str, Any] | None:
    if value is None or (optional and isinstance(value, Mapping) and not value):
        if not optional:
            problems.append(f"{block}: missing; pick one from conf/{block}/")
        return None
    if not isinstance(value, Mapping) or not isinstance(value.get(TARGET_KEY), str):
        group = block.split(".")[0]
        problems.append(f"{block}: needs a {TARGET_KEY} (see the options in conf/{group}/); got {value!r}")
        return None
    if check is not None:
        problems += check(block, value)
    return dict(value)


def _callbacks(value: Any, problems: list[str], check: TargetCheck | None) -> dict[str, Mapping[str, Any]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.append(f"callbacks: expected a mapping of named callbacks, got {value!r}")
        return {}
    out = {}
    for name, entry in value.items():
        block = _target_block(f"callbacks.{name}", entry, problems, check, optional=True)
        if block is not None:
            out[str(name)] = block
    return out


def _trainer(value: Any, problems: list[str]) -> dict[str, Any]:
    value = dict(value or {})
    problems += _unknown("trainer", value, list(TRAINER_ARGS))
    return value


def _resume_problems(c: Mapping[str, Any]) -> list[str]:
    resume, ckpt = c.get("resume", "auto"), c.get("ckpt_path")
    if ckpt and resume not in ("auto", None, "never", False) and str(resume) != str(ckpt):
        return [f"resume={resume} and ckpt_path={ckpt} name different files; pass one of them"]
    return []


def parse_run_config(c: Mapping[str, Any], check_target: TargetCheck | None = None) -> RunConfig:
    """The typed config of a resolved run config; raises one :class:`RunConfigError` listing every problem.

    ``check_target(block_name, block)`` returns the problems of a ``_target_`` block (unknown keys for its
    target, a target that does not import); the training layer passes one, this layer imports nothing.
    """
    problems: list[str] = []
    problems += _unknown("the run config (top level)", c, sorted(_TOP_KEYS))
    kwargs: dict[str, Any] = {k: c[k] for k in c if k in _TOP_KEYS and k not in _BLOCK_TYPES}
    for name, cls in _BLOCK_TYPES.items():
        kwargs[name] = parse_block(cls, name, c.get(name), problems)
    kwargs["data"] = _target_block("data", c.get("data"), problems, check_target, optional=False) or {}
    for name in ("logger", "strategy"):
        kwargs[name] = _target_block(name, c.get(name), problems, check_target, optional=True)
    kwargs["callbacks"] = _callbacks(c.get("callbacks"), problems, check_target)
    kwargs["trainer"] = _trainer(c.get("trainer"), problems)
    problems += _resume_problems(c)
    if problems:
        raise RunConfigError(problems)
    return RunConfig(**kwargs)


def stored_run_config(c: Mapping[str, Any]) -> RunConfig:
    """The typed view of a run config stored in a checkpoint, run dir or export: data, never instantiated.

    A stored config may come from an older or newer version, so keys this version does not know are ignored and
    no block is validated (validation belongs to the start of a run); ``_target_`` blocks stay plain mappings.
    """
    kwargs: dict[str, Any] = {k: c[k] for k in c if k in _TOP_KEYS and k not in _BLOCK_TYPES}
    for name, cls in _BLOCK_TYPES.items():
        kwargs[name] = parse_block(cls, name, c.get(name), None)
    kwargs["data"] = dict(c.get("data") or {})
    kwargs["trainer"] = dict(c.get("trainer") or {})
    kwargs["callbacks"] = {k: dict(v) for k, v in (c.get("callbacks") or {}).items() if isinstance(v, Mapping)}
    for name in ("logger", "strategy"):
        kwargs[name] = dict(c[name]) if isinstance(c.get(name), Mapping) else None
    return RunConfig(**kwargs)


def as_run_config(c: RunConfig | Mapping[str, Any]) -> RunConfig:
    """``c`` itself when already typed, else :func:`stored_run_config` of the mapping."""
    return c if isinstance(c, RunConfig) else stored_run_config(c)
