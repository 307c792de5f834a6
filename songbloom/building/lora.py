"""LoRA adapters (peft) on named SongBloom sub-networks, plus merge and adapter-only state dicts.

Targets are chosen by sub-network, never by a bare substring: each group below is a regex that peft
full-matches against module names, so ``q_proj`` in the LM cannot catch a DiT layer by accident.
peft is imported lazily (it takes seconds to import and a run without adapters does not need it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from songbloom.building.sketch_tables import SKETCH_CLASSIFIER_LORA_REGEX
from songbloom.config.run import LoraConfig

logger = logging.getLogger(__name__)

TARGET_GROUPS: dict[str, str] = {
    "lm_attn": r"ar_transformer\.layers\.\d+\.self_attn\.(q_proj|k_proj|v_proj|o_proj)",
    "lm_mlp": r"ar_transformer\.layers\.\d+\.mlp\.(gate_proj|up_proj|down_proj)",
    "dit_attn": r"nar_dit\.layers\.\d+\.self_attn\.(to_qkv|to_out)",
    "dit_mlp": r"nar_dit\.layers\.\d+\.ff\.ff\.(0\.up_proj|0\.gate_proj|2)",
    "conditioners": r"(condition_provider\.conditioners\.prompt_wav\.output_proj|block_conv\.(1|3))",
}
"""Sub-network name -> regex over module names (peft full-matches it)."""

PRESETS: dict[str, tuple[str, ...]] = {
    "none": (),
    "lm_attn": ("lm_attn",),
    "lm_all": ("lm_attn", "lm_mlp"),
    "dit_all": ("dit_attn", "dit_mlp"),
    "all": ("lm_attn", "lm_mlp", "dit_attn", "dit_mlp", "conditioners"),
}


@dataclass
class LoRASettings:
    """What ``conf/lora/*.yaml`` describes."""

    targets: tuple[str, ...] = ()
    rank: int = 16
    alpha: float = 32.0
    dropout: float = 0.05
    use_rslora: bool = False
    use_dora: bool = False
    extra_target_regex: str | None = None
    exclude_regex: str | None = None
    base_dtype: str | None = None  # "bf16": hold frozen Linear weights in bf16 (needs bf16-mixed)
    layers: list[int] | None = field(default=None)  # restrict to these layer indices (None = all)
    # Adapters on the sketch classifier's Linear layers too (``trainable.recovered_tables: lora``); set by the
    # resolved sketch tables layout, not by conf/lora (see songbloom.building.model.layout_lora_settings).
    sketch_classifier: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.targets) or bool(self.extra_target_regex)

    @classmethod
    def from_config(cls, cfg: Mapping) -> LoRASettings:
        cfg = dict(cfg)
        preset = cfg.pop("preset", None)
        targets = cfg.pop("targets", None)
        if targets is None:
            if preset not in PRESETS:
                raise ValueError(f"lora.preset={preset!r}: choose from {sorted(PRESETS)} or list lora.targets")
            targets = PRESETS[preset]
        unknown = sorted(set(targets) - set(TARGET_GROUPS))
        if unknown:
            raise ValueError(f"lora.targets has unknown sub-networks {unknown}; choose from {sorted(TARGET_GROUPS)}")
        known = {f for f in cls.__dataclass_fields__}
        extra = sorted(set(cfg) - known)
        if extra:
            raise ValueError(f"lora: unknown keys {extra}")
        return cls(targets=tuple(targets), **cfg)

    @classmethod
    def from_run(cls, lora: LoraConfig) -> LoRASettings:
        """The settings of a run's typed ``lora`` block."""
        cfg = {k: v for k, v in dataclasses.asdict(lora).items() if v is not None or k in ("preset", "targets")}
        if cfg.get("targets") is not None:
            cfg.pop("preset", None)
        else:
            cfg.pop("targets", None)
            cfg["preset"] = cfg.get("preset") or "none"
        if cfg.get("layers") is not None:
            cfg["layers"] = list(cfg["layers"])
        return cls.from_config(cfg)

    def target_regex(self) -> str:
        parts = [TARGET_GROUPS[t] for t in self.targets]
        if self.extra_target_regex:
            parts.append(self.extra_target_regex)
        regex = "(" + "|".join(parts) + ")"
        if self.layers is not None:
            layer_alt = "|".join(str(int(i)) for i in self.layers)
            regex = rf"(?=.*\.layers\.({layer_alt})\.){regex}"
        if self.sketch_classifier:  # outside the layer restriction: the classifier is not in a numbered layer
            regex = f"({regex}|{SKETCH_CLASSIFIER_LORA_REGEX})"
        return regex


def peft_lora_config(settings: LoRASettings, modules_to_save: list[str] | None = None, base_model: str | None = None):
    """The peft ``LoraConfig`` for these settings: one definition for training and for adapter export."""
    from peft import LoraConfig

    return LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_regex(),
        exclude_modules=settings.exclude_regex,
        use_rslora=settings.use_rslora,
        use_dora=settings.use_dora,
        bias="none",
        modules_to_save=modules_to_save or None,
        base_model_name_or_path=base_model,
    )


def apply_lora(model: nn.Module, settings: LoRASettings, log_level: int = logging.INFO) -> list[str]:
    """Inject adapters in place (the model keeps its class and forward); freezes the whole base.

    Returns the names of the adapted modules. Raises when the targets match nothing.
    """
    from peft import inject_adapter_in_model

    config = peft_lora_config(settings)
    for p in model.parameters():
        p.requires_grad_(False)
    inject_adapter_in_model(config, model)
    adapted = [n for n, m in model.named_modules() if is_lora_layer(m)]
    if not adapted:
        raise ValueError(f"LoRA targets {settings.targets} (regex {settings.target_regex()!r}) matched no module")
    for n, p in model.named_parameters():
        p.requires_grad_(is_adapter_param(n))
    logger.log(
        log_level,
        "LoRA r=%d alpha=%g on %d modules (%s)",
        settings.rank,
        settings.alpha,
        len(adapted),
        ", ".join(settings.targets),
    )
    return adapted


def is_lora_layer(module: nn.Module) -> bool:
    """A module peft wrapped with an adapter (the one definition: export, merge and the base view use it)."""
    from peft.tuners.lora import LoraLayer

    return isinstance(module, LoraLayer)


def lora_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if is_lora_layer(m)]


def set_lora_scale(model: nn.Module, scale: float) -> int:
    """Apply every LoRA adapter of ``model`` at ``scale`` x its trained strength (peft ``set_scale``: the delta
    ``B A x`` is multiplied by ``scale * alpha / r``). Tensors trained in full are not touched. Returns the
    number of adapted layers."""
    layers = lora_layers(model)
    for layer in layers:
        for adapter in list(layer.scaling):
            layer.set_scale(adapter, float(scale))
    return len(layers)


def is_adapter_param(name: str) -> bool:
    return any(tag in name for tag in (".lora_A.", ".lora_B.", ".lora_magnitude_vector.", ".lora_embedding_"))


def cast_frozen_linears(model: nn.Module, dtype: torch.dtype = torch.bfloat16, keep: Iterable[str] = ()) -> int:
    """Hold frozen ``nn.Linear`` weights in ``dtype`` to save memory; trainable tensors stay fp32.

    Only Linear weights: under autocast every linear casts its operands anyway, while norms and embeddings
    would change numerics. ``keep``: parameter names (plain, without peft's ``base_layer``) left as they are,
    e.g. base tables an export must reproduce bit for bit. Returns the number of tensors cast.
    """
    keep = set(keep)
    count = 0
    for mod_name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            for p_name, p in m.named_parameters(recurse=False):
                if f"{mod_name}.{p_name}".replace(".base_layer.", ".") in keep:
                    continue
                if not p.requires_grad and p.dtype != dtype:
                    p.data = p.data.to(dtype)
                    count += 1
    return count


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapter tensors, keyed by their module paths (an adapter-only export)."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if is_adapter_param(n)}


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight and unwrap it, giving back the original module layout."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    wrapped: list[tuple[str, BaseTunerLayer]] = [(n, m) for n, m in model.named_modules() if is_lora_layer(m)]
    for name, layer in wrapped:
        layer.merge()
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, layer.get_base_layer())
    return model


def names_in(names: Iterable[str], prefix: str) -> list[str]:
    return [n for n in names if n.startswith(prefix)]


def snapshot_full_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """CPU copies of the tensors a LoRA run trains in full (not adapters): the base model needs their
    values from before training."""
    return {
        n: p.detach().cpu().clone()
        for n, p in model.named_parameters()
        if p.requires_grad and not is_adapter_param(n)
    }


@contextlib.contextmanager
def base_weights(model: nn.Module, full_tensors: Mapping[str, torch.Tensor]) -> Iterator[None]:
    """The base model inside the block: adapters off, fully-trained tensors at their pre-training values."""
    layers = lora_layers(model)
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    params = dict(model.named_parameters())
    saved = {n: params[n].detach().clone() for n in full_tensors}
    try:
        for layer in layers:
            layer.enable_adapters(False)
        with torch.no_grad():
            for n, v in full_tensors.items():
                params[n].copy_(v.to(params[n].device, params[n].dtype))
        yield
    finally:
        for layer in layers:
            layer.enable_adapters(True)
        with torch.no_grad():
            for n, v in saved.items():
                params[n].copy_(v)
        for n, p in model.named_parameters():  # peft's toggle also changes requires_grad: put ours back
            p.requires_grad_(flags[n])
