"""Checkpoint formats of our own training outputs, registered with :mod:`songbloom.inference.checkpoints`.

- ``lightning_ckpt``: a training ``.ckpt`` (LoRA or not); every model and LoRA setting comes from the run
  config stored in it, the frozen base of an adapter-only checkpoint from its recorded init source or
  ``base_path``.
- ``songbloom_export``: a merged export directory (``generator.safetensors`` + ``config.json``).
- ``peft_adapter``: a PEFT adapter directory on top of a base model (``base_path``, else the adapter's
  ``base_model_name_or_path``).

Heavy imports (peft, Lightning) happen inside the loaders, so importing this module stays cheap.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from songbloom.inference.checkpoints import CheckpointFormat, LoadOptions, load_checkpoint, register_checkpoint_format

if TYPE_CHECKING:
    from songbloom.api import SongBloom
    from songbloom.models.vae import OobleckVAE

logger = logging.getLogger(__name__)


def _no_vae(path: Path) -> FileNotFoundError:
    return FileNotFoundError(
        f"{path}: no VAE is known for this model (it is not stored with it and the run used neither release VAE "
        "files nor the demo VAE); pass a base model whose VAE to use (infer.py --base-ckpt <release dir or .pt>)"
    )


def _base_vae(opts: LoadOptions) -> OobleckVAE | None:
    return load_checkpoint(opts.base_path).vae if opts.base_path is not None else None


# ------------------------------------------------------------------------------------------------ lightning .ckpt
def _detect_lightning(path: Path) -> bool:
    from songbloom.export.detect import is_training_checkpoint

    return path.suffix == ".ckpt" and is_training_checkpoint(path)


def _load_lightning(path: Path, opts: LoadOptions) -> SongBloom:
    from songbloom.api import SongBloom
    from songbloom.export.training_checkpoint import load_training_checkpoint

    trained = load_training_checkpoint(path, base=opts.base_path)
    if trained.vae is None:
        raise _no_vae(path)
    cfg = trained.config
    cfg.pretrained_path = str(path.resolve())
    # The adapters stay unmerged: outputs are exactly those of the training module.
    return SongBloom._finish(cfg, trained.model, trained.vae, opts.device, opts.dtype)


# ------------------------------------------------------------------------------------------------ merged export
def _detect_export(path: Path) -> bool:
    from songbloom.export.detect import is_merged_export

    return is_merged_export(path)


def _load_export(path: Path, opts: LoadOptions) -> SongBloom:
    from songbloom.api import SongBloom
    from songbloom.export.merged import load_merged_export
    from songbloom.export.vae_source import vae_from_files

    cfg, model, vae, _meta = load_merged_export(path)
    if vae is None:
        vae = _base_vae(opts)
    if vae is None and cfg.vae_config_path and cfg.vae_ckpt_path:
        vae = vae_from_files(cfg.vae_config_path, cfg.vae_ckpt_path)
    if vae is None:
        raise _no_vae(path)
    cfg.pretrained_path = str(path.resolve())
    return SongBloom._finish(cfg, model, vae, opts.device, opts.dtype)


# ------------------------------------------------------------------------------------------------ PEFT adapter
def _detect_adapter(path: Path) -> bool:
    from songbloom.export.detect import is_adapter_dir

    return is_adapter_dir(path)


def load_adapter_base(path: Path, base_path: Path | None = None) -> SongBloom:
    """The base model of adapter directory ``path``: ``base_path``, else its recorded base_model_name_or_path."""
    from songbloom.export.peft_adapter import read_adapter_meta
    from songbloom.inference.checkpoints import load_release

    if base_path is not None:
        return load_checkpoint(base_path)
    ref = read_adapter_meta(path)["peft"].get("base_model_name_or_path")
    if not ref:
        raise ValueError(f"{path}: the adapter names no base model; pass one (infer.py --base-ckpt <release dir>)")
    for candidate in (Path(ref), path / ref):
        if candidate.exists():
            return load_checkpoint(candidate)
    from songbloom.release.files import release_file_plan

    try:
        release_file_plan(ref)
    except (KeyError, ValueError) as e:
        raise FileNotFoundError(
            f"{path}: its base model {ref!r} is neither an existing path nor a known release name; "
            "pass the base explicitly (infer.py --base-ckpt <release dir or .pt>)"
        ) from e
    return load_release(ref, local_only=True)


def _load_adapter(path: Path, opts: LoadOptions) -> SongBloom:
    from songbloom.api import SongBloom
    from songbloom.export.peft_adapter import load_peft_adapter

    base = load_adapter_base(path, opts.base_path)
    base.model.float()
    peft_model = load_peft_adapter(base.model, path)
    model = peft_model.get_base_model()  # adapters injected, unmerged (the training module's exact math)
    cfg = base.config
    cfg.pretrained_path = str(path.resolve())
    return SongBloom._finish(cfg, model, base.vae, opts.device, opts.dtype)


register_checkpoint_format(
    CheckpointFormat(
        "lightning_ckpt",
        "a training .ckpt written by our train.py (settings from its stored run config; --base-ckpt for the base)",
        _detect_lightning,
        _load_lightning,
    )
)
register_checkpoint_format(
    CheckpointFormat(
        "songbloom_export",
        "a directory exported by scripts/export.py: generator.safetensors + config.json (+ vae.safetensors)",
        _detect_export,
        _load_export,
    )
)
register_checkpoint_format(
    CheckpointFormat(
        "peft_adapter",
        "a PEFT adapter directory (adapter_config.json + adapter_model.safetensors) on its base model",
        _detect_adapter,
        _load_adapter,
    )
)
