"""Map the fork's state-dict keys onto ours, folding its LoRA wrappers into the base weights.

The fork wraps each targeted ``nn.Linear`` as ``<module>.base`` (the frozen original) plus
``<module>.lora_A`` (r x in) and ``<module>.lora_B`` (out x r), and adds ``B(A(x)) * alpha / r`` to the
output. Folding ``W + (alpha / r) * B @ A`` into the base weight gives exactly that function at inference
(the adapter's dropout is off then), under the key the release layout expects. The rank is read from the
tensors; ``alpha`` is stored nowhere in the fork's files, so it defaults to the fork's only documented value
(32) unless the caller says otherwise, and the report records which was used.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from songbloom.checkpoints.release_state import GENERATOR_PREFIX, LEGACY_VAE_PREFIX, VAE_PREFIX
from songbloom.utils.atomic import atomic_write_json

logger = logging.getLogger(__name__)

FORK_DEFAULT_LORA_ALPHA = 32.0
_LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<which>[AB])\.weight$")


@dataclass
class MergedAdapter:
    module: str  # target key prefix in our layout, e.g. model.ar_transformer.layers.0.self_attn.q_proj
    rank: int
    alpha: float
    scaling: float


@dataclass
class MappingReport:
    """What happened to every key of a fork checkpoint: mapped, merged, unmapped (with reason), missing."""

    source: str
    mapped: list[str] = field(default_factory=list)  # our keys that received a tensor
    renamed: dict[str, str] = field(default_factory=dict)  # fork key -> our key (LoRA base weights)
    merged_lora: list[MergedAdapter] = field(default_factory=list)
    unmapped: dict[str, str] = field(default_factory=dict)  # fork key -> why it was not used
    missing: list[str] = field(default_factory=list)  # our keys the checkpoint did not provide
    dropped: list[str] = field(default_factory=list)  # fork keys left out on purpose (release-era VAE copy)
    lora_alpha_source: str | None = None
    config_source: str | None = None
    vae_config_source: str | None = None
    notes: list[str] = field(default_factory=list)
    licences: list[dict[str, Any]] = field(default_factory=list)  # songbloom.licences records

    @property
    def ok(self) -> bool:
        return not self.unmapped and not self.missing

    def counts(self) -> dict[str, int]:
        return {
            "mapped": len(self.mapped),
            "renamed": len(self.renamed),
            "merged_lora": len(self.merged_lora),
            "unmapped": len(self.unmapped),
            "missing": len(self.missing),
            "dropped": len(self.dropped),
        }

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["counts"] = self.counts()
        d["ok"] = self.ok
        return d

    def summary(self) -> str:
        c = self.counts()
        parts = [f"{k} {v}" for k, v in c.items()]
        text = f"fork checkpoint {self.source}: " + ", ".join(parts)
        if self.merged_lora:
            a = self.merged_lora[0]
            text += f" (LoRA rank {a.rank}, alpha {a.alpha:g} from {self.lora_alpha_source}, scaling {a.scaling:g})"
        return text

    def write_json(self, path: str | Path) -> Path:
        return atomic_write_json(Path(path), self.to_dict())

    def log(self) -> None:
        logger.info("%s", self.summary())
        for key, why in list(self.unmapped.items())[:20]:
            logger.warning("unmapped fork key %s: %s", key, why)
        for key in self.missing[:20]:
            logger.warning("missing (not in the fork checkpoint): %s", key)
        for note in self.notes:
            logger.info("%s", note)


def _merge(base: Tensor, a: Tensor, b: Tensor, scaling: float) -> Tensor:
    delta = (b.double() @ a.double()) * scaling
    return (base.double() + delta).to(base.dtype)


def _collect_adapters(sd: Mapping[str, Tensor]) -> tuple[dict[str, dict[str, Tensor]], dict[str, Tensor]]:
    """(module -> {"A": lora_A, "B": lora_B}, every other key)."""
    adapters: dict[str, dict[str, Tensor]] = {}
    rest: dict[str, Tensor] = {}
    for key, value in sd.items():
        m = _LORA_KEY.match(key)
        if m:
            adapters.setdefault(m.group("module"), {})[m.group("which")] = value
        else:
            rest[key] = value
    return adapters, rest


def _unwrap_bases(rest: dict[str, Tensor], adapters: Mapping[str, object], report: MappingReport) -> dict[str, Tensor]:
    """``<module>.base.<param>`` of an adapted module -> ``<module>.<param>`` (recorded as renamed)."""
    flat: dict[str, Tensor] = {}
    for key, value in rest.items():
        module, sep, param = key.rpartition(".base.")
        if sep and module in adapters:
            target = f"{module}.{param}"
            report.renamed[key] = target
            flat[target] = value
        else:
            flat[key] = value
    return flat


def _merge_adapter(module: str, pair: dict[str, Tensor], flat: dict[str, Tensor], alpha: float,
                   report: MappingReport) -> None:
    """Fold one adapter into ``flat[<module>.weight]``, or record why its keys stay unmapped."""
    a, b = pair.get("A"), pair.get("B")
    weight_key = f"{module}.weight"
    if a is None or b is None:
        for which, t in pair.items():
            if t is not None:
                report.unmapped[f"{module}.lora_{which}.weight"] = "adapter half without its partner"
        return
    if weight_key not in flat:
        report.unmapped[f"{module}.lora_A.weight"] = f"no base weight {module}.base.weight to merge into"
        report.unmapped[f"{module}.lora_B.weight"] = f"no base weight {module}.base.weight to merge into"
        return
    base = flat[weight_key]
    rank = a.shape[0]
    if a.dim() != 2 or b.dim() != 2 or b.shape[1] != rank or (b.shape[0], a.shape[1]) != tuple(base.shape):
        why = f"shapes A {tuple(a.shape)}, B {tuple(b.shape)} do not fit base {tuple(base.shape)}"
        report.unmapped[f"{module}.lora_A.weight"] = why
        report.unmapped[f"{module}.lora_B.weight"] = why
        return
    scaling = alpha / rank
    flat[weight_key] = _merge(base, a, b, scaling)
    report.merged_lora.append(MergedAdapter(module, rank, alpha, scaling))


def _split_blocks(flat: dict[str, Tensor], report: MappingReport) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(generator, VAE) with prefixes removed; the release-era VAE copy is used only when there is no other VAE."""
    generator: dict[str, Tensor] = {}
    vae: dict[str, Tensor] = {}
    legacy: dict[str, Tensor] = {}
    for key, value in flat.items():
        if key.startswith(LEGACY_VAE_PREFIX):
            legacy[key[len(LEGACY_VAE_PREFIX) :]] = value
        elif key.startswith(VAE_PREFIX):
            vae[key[len(VAE_PREFIX) :]] = value
        elif key.startswith(GENERATOR_PREFIX):
            generator[key[len(GENERATOR_PREFIX) :]] = value
        else:
            report.unmapped[key] = f"outside the known blocks ({GENERATOR_PREFIX}*, {VAE_PREFIX}*)"
    if legacy and not vae:
        vae = legacy
        report.notes.append(f"VAE taken from the release-era copy {LEGACY_VAE_PREFIX}* ({len(legacy)} tensors)")
    elif legacy:
        report.dropped += sorted(LEGACY_VAE_PREFIX + k for k in legacy)
        report.notes.append(f"dropped the release-era VAE copy {LEGACY_VAE_PREFIX}* ({len(legacy)} tensors)")
    return generator, vae


def _match_expected(prefix: str, got: dict[str, Tensor], expected: Mapping[str, tuple[int, ...]],
                    report: MappingReport) -> dict[str, Tensor]:
    """The tensors of ``got`` whose key and shape the module expects; the others unmapped, the gaps missing."""
    out: dict[str, Tensor] = {}
    for key, value in got.items():
        if key not in expected:
            report.unmapped[prefix + key] = "no such key in our model"
        elif tuple(value.shape) != tuple(expected[key]):
            report.unmapped[prefix + key] = f"shape {tuple(value.shape)} != ours {tuple(expected[key])}"
        else:
            out[key] = value
            report.mapped.append(prefix + key)
    report.missing += sorted(prefix + k for k in expected if k not in out)
    return out


def map_fork_state_dict(
    sd: Mapping[str, Tensor],
    expected_generator: Mapping[str, tuple[int, ...]],
    expected_vae: Mapping[str, tuple[int, ...]],
    *,
    lora_alpha: float | None = None,
    source: str = "",
) -> tuple[dict[str, Tensor], dict[str, Tensor], MappingReport]:
    """Fork state dict -> (our generator state dict, our VAE state dict, report), prefixes removed.

    ``expected_*`` are the key -> shape maps of the modules to load (``module.state_dict()``). Keys that
    do not fit (unknown names, wrong shapes, half an adapter) are listed in ``report.unmapped`` with the
    reason; module keys that nothing fills are listed in ``report.missing``. The caller decides whether a
    non-empty list is fatal (our loaders are strict: it is).
    """
    report = MappingReport(source=source)
    alpha = FORK_DEFAULT_LORA_ALPHA if lora_alpha is None else float(lora_alpha)
    report.lora_alpha_source = "fork default (not stored in the checkpoint)" if lora_alpha is None else "given"

    # 1. collect adapters; 2. unwrap "<module>.base.<param>" and fold the adapters in
    adapters, rest = _collect_adapters(sd)
    flat = _unwrap_bases(rest, adapters, report)
    for module, pair in sorted(adapters.items()):
        _merge_adapter(module, pair, flat, alpha, report)
    # 3. split generator / VAE (the release-era VAE copy inside the prompt conditioner is dropped)
    generator, vae = _split_blocks(flat, report)
    # 4. compare against the modules
    generator = _match_expected(GENERATOR_PREFIX, generator, expected_generator, report)
    vae = _match_expected(VAE_PREFIX, vae, expected_vae, report)
    report.mapped.sort()
    return generator, vae, report
