"""A PEFT adapter directory (``adapter_config.json`` + ``adapter_model.safetensors``) and its merge.

``peft.PeftModel.from_pretrained(SongBloomModel(cfg), dir)`` loads it: the adapter tensors use peft's saved
names (``base_model.model.<module>.lora_A.weight``) and the tensors trained in full (sketch embedding,
classifier, lyric embedding) travel as peft ``modules_to_save``. ``songbloom_adapter.json`` beside them
records the SongBloom config, the base model and the licences (peft ignores it).
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save
from torch import nn

from songbloom.building.lora import (
    LoRASettings,
    is_adapter_param,
    is_lora_layer,
    peft_lora_config,
    set_lora_scale,
)
from songbloom.checkpoints.bundle import SongBloom
from songbloom.checkpoints.keys import ADAPTER_CONFIG, ADAPTER_META, ADAPTER_WEIGHTS
from songbloom.checkpoints.metadata import recorded_language
from songbloom.checkpoints.registry import CheckpointFormat, LoadOptions, load_checkpoint
from songbloom.checkpoints.release_files import release_file_plan
from songbloom.checkpoints.safe_load import check_file_integrity
from songbloom.config import SongBloomConfig
from songbloom.models.songbloom import SongBloomModel
from songbloom.utils.atomic import atomic_write, atomic_write_text

logger = logging.getLogger(__name__)

ADAPTER_NAME = "default"
PEFT_PREFIX = "base_model.model."


def _full_modules(model: nn.Module, fully_trained: list[str]) -> list[str]:
    """Module names holding the fully-trained tensors (peft ``modules_to_save`` works on whole modules)."""

    lora_modules = {n for n, m in model.named_modules() if is_lora_layer(m)}
    modules = []
    for name in fully_trained:
        module, _, _ = name.rpartition(".")
        inside = [m for m in lora_modules if module == m or module.startswith(m + ".")]
        if not module or inside:
            raise ValueError(
                f"tensor {name!r} is trained in full but lives "
                + ("on the root module" if not module else f"inside the adapted module {inside[0]!r}")
                + "; peft cannot carry it in an adapter directory. Export the merged model instead."
            )
        if module not in modules:
            modules.append(module)
    return modules


def save_peft_adapter(
    model: nn.Module,
    settings: LoRASettings,
    fully_trained: list[str],
    out_dir: str | Path,
    *,
    config: SongBloomConfig,
    base_model_name_or_path: str | None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write the adapters of ``model`` (peft-injected, e.g. a rebuilt training checkpoint) as a PEFT directory."""

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    modules = _full_modules(model, fully_trained)
    tensors: dict[str, torch.Tensor] = {}
    for name, p in model.named_parameters():
        if is_adapter_param(name):
            tensors[PEFT_PREFIX + name.replace(f".{ADAPTER_NAME}.", ".")] = p
    if not tensors:
        raise ValueError("the model has no LoRA adapters: export the merged model instead")
    for module in modules:
        for pname, p in model.get_submodule(module).named_parameters():
            tensors[f"{PEFT_PREFIX}{module}.{pname}"] = p
    blob = save({k: v.detach().float().cpu().contiguous() for k, v in tensors.items()}, metadata={"format": "pt"})
    paths = {"adapter_weights": atomic_write(out / ADAPTER_WEIGHTS, lambda f: f.write(blob), binary=True)}

    cfg = peft_lora_config(settings, modules, base_model_name_or_path)
    cfg.auto_mapping = {"base_model_class": SongBloomModel.__name__, "parent_library": SongBloomModel.__module__}
    meta = {"songbloom": config.to_dict(), "base_model_name_or_path": base_model_name_or_path, **(metadata or {})}
    meta["songbloom_export"] = "peft_adapter"
    paths["songbloom_meta"] = atomic_write_text(out / ADAPTER_META, json.dumps(meta, indent=1, default=str))
    cfg.save_pretrained(str(out))  # peft's own writer; last, so a directory with the config is complete
    paths["adapter_config"] = out / ADAPTER_CONFIG
    logger.info("PEFT adapter in %s: %d tensors, modules_to_save=%s", out, len(tensors), modules)
    return paths


def read_adapter_meta(adapter_dir: str | Path) -> dict[str, Any]:
    """``songbloom_adapter.json`` (empty when the directory came from elsewhere) plus the peft config."""
    adapter_dir = Path(adapter_dir)
    meta: dict[str, Any] = {}
    if (adapter_dir / ADAPTER_META).is_file():
        meta = json.loads((adapter_dir / ADAPTER_META).read_text(encoding="utf-8"))
    try:
        meta["peft"] = json.loads((adapter_dir / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{adapter_dir / ADAPTER_CONFIG}: unreadable PEFT adapter config ({e})") from e
    return meta


def load_peft_adapter(base_model: SongBloomModel, adapter_dir: str | Path) -> nn.Module:
    """``PeftModel.from_pretrained`` on ``base_model`` (modified in place); returns the peft model.

    Every tensor in the file must have landed in the model (peft itself only warns about missing keys).
    """
    from peft import PeftModel, get_peft_model_state_dict

    adapter_dir = Path(adapter_dir)
    if not is_adapter_dir(adapter_dir):
        raise FileNotFoundError(f"{adapter_dir}: not a PEFT adapter directory ({ADAPTER_CONFIG} + {ADAPTER_WEIGHTS})")
    check_file_integrity(adapter_dir / ADAPTER_WEIGHTS)
    try:
        peft_model = PeftModel.from_pretrained(base_model, str(adapter_dir))
    except (RuntimeError, KeyError) as e:  # shape mismatches, targets the base does not have
        raise ValueError(
            f"{adapter_dir}: peft cannot put this adapter on the given base model ({e}); "
            "is the base the model it was trained on? (pass it with --base-ckpt)"
        ) from e
    stored = load_file(str(adapter_dir / ADAPTER_WEIGHTS))
    loaded = get_peft_model_state_dict(peft_model, save_embedding_layers=False)
    missing = sorted(set(stored) - set(loaded))
    differ = sorted(k for k in set(stored) & set(loaded) if not torch.equal(stored[k], loaded[k].float().cpu()))
    if missing or differ:
        raise ValueError(
            f"{adapter_dir / ADAPTER_WEIGHTS}: {len(missing)} tensors were not loaded by peft ({missing[:5]}) and "
            f"{len(differ)} differ after loading ({differ[:5]}); the adapter was made for another model layout"
        )
    peft_model.eval()
    return peft_model


def merge_peft_adapter(base_model: SongBloomModel, adapter_dir: str | Path, strength: float = 1.0) -> SongBloomModel:
    """A plain generator: base + ``strength`` x LoRA deltas (0 = the base's adapted layers, 1 = the full merge).

    Only the LoRA deltas are scaled. Tensors trained in full (sketch embedding and classifier, lyric embedding)
    are taken as trained at every strength: they belong to the codebook (and vocabulary) of the training shards,
    and a mix with the base's rows, which belong to another codebook, means nothing. ``base_model`` is not
    modified.
    """
    from peft.utils.other import ModulesToSaveWrapper

    strength = float(strength)
    if strength != strength:
        raise ValueError("merge strength is NaN")
    if not 0.0 <= strength <= 1.0:
        logger.warning("merge strength %g is outside [0, 1]: extrapolating the adapter", strength)
    peft_model = load_peft_adapter(copy.deepcopy(base_model), adapter_dir)
    if strength != 1.0 and read_adapter_meta(adapter_dir)["peft"].get("use_dora"):
        raise ValueError(f"{adapter_dir}: DoRA adapters cannot be merged at a partial strength (only 1.0)")
    scaled = set_lora_scale(peft_model, strength)
    full = [n for n, m in peft_model.named_modules() if isinstance(m, ModulesToSaveWrapper)]
    logger.info(
        "merging %s at strength %g: %d LoRA layers scaled; tensors trained in full taken as trained (%s)",
        adapter_dir,
        strength,
        scaled,
        ", ".join(n.removeprefix(PEFT_PREFIX) for n in full) or "none",
    )
    merged = peft_model.merge_and_unload()
    return merged.eval()


# ------------------------------------------------------------------------------------------------ the format
def is_adapter_dir(path: str | Path) -> bool:
    """A PEFT adapter directory: ``adapter_config.json`` + ``adapter_model.safetensors``."""
    path = Path(path)
    return path.is_dir() and (path / ADAPTER_CONFIG).is_file() and (path / ADAPTER_WEIGHTS).is_file()


def load_adapter_base(path: Path, base_path: Path | None = None) -> SongBloom:
    """The base model of adapter directory ``path``: ``base_path``, else its recorded base_model_name_or_path."""
    if base_path is not None:
        return load_checkpoint(base_path)
    ref = read_adapter_meta(path)["peft"].get("base_model_name_or_path")
    if not ref:
        raise ValueError(f"{path}: the adapter names no base model; pass one (infer.py --base-ckpt <release dir>)")
    for candidate in (Path(ref), path / ref):
        if candidate.exists():
            return load_checkpoint(candidate)
    try:
        release_file_plan(ref)
    except (KeyError, ValueError) as e:
        raise FileNotFoundError(
            f"{path}: its base model {ref!r} is neither an existing path nor a known release name; "
            "pass the base explicitly (infer.py --base-ckpt <release dir or .pt>)"
        ) from e
    return SongBloom.from_pretrained(ref, local_only=True)


def _load(path: Path, opts: LoadOptions) -> SongBloom:
    base = load_adapter_base(path, opts.base_path)
    base.model.float()
    peft_model = load_peft_adapter(base.model, path)
    model = peft_model.get_base_model()  # adapters injected, unmerged (the training module's exact math)
    cfg = base.config
    language = recorded_language(read_adapter_meta(path)) or base.training_language
    return SongBloom.loaded_from(path, cfg, model, base.vae, opts.device, opts.dtype, training_language=language)


FORMAT = CheckpointFormat(
    "peft_adapter",
    "a PEFT adapter directory (adapter_config.json + adapter_model.safetensors) on its base model",
    is_adapter_dir,
    _load,
)
