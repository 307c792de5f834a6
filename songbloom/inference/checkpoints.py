"""Load a generator + VAE for inference from any checkpoint we know, through a registry of formats.

Each format is a :class:`CheckpointFormat`: a cheap ``detect(path)`` and a ``load(path, options)`` that
returns a built :class:`songbloom.api.SongBloom` (config, generator, VAE, vocabulary). The model settings
always come from the checkpoint itself or the config stored beside it, never from command-line flags.
Formats shipped here: a release directory (a model YAML whose ``???`` paths point at its own folder) and
a release ``.pt`` with its YAML beside it. Lightning checkpoints, our exports and PEFT adapters register
their own handlers with :func:`register_checkpoint_format` (first match wins, in registration order,
unless a format name is forced).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from songbloom.api import SongBloom

logger = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")


@dataclass(frozen=True)
class LoadOptions:
    device: torch.device
    dtype: torch.dtype = torch.float32
    config_path: Path | None = None  # an explicit model YAML for a bare weights file
    base_path: Path | None = None  # the base model under an adapter or an adapter-only training checkpoint


@dataclass(frozen=True)
class CheckpointFormat:
    """One checkpoint layout: ``detect`` must be cheap (no weight reads) and must not raise."""

    name: str
    description: str
    detect: Callable[[Path], bool]
    load: Callable[[Path, LoadOptions], SongBloom]


_FORMATS: dict[str, CheckpointFormat] = {}


def register_checkpoint_format(fmt: CheckpointFormat, *, replace: bool = False) -> None:
    """Add a format handler; detection tries handlers in registration order."""
    if fmt.name in _FORMATS and not replace:
        raise ValueError(f"checkpoint format {fmt.name!r} is already registered (pass replace=True)")
    _FORMATS[fmt.name] = fmt


def checkpoint_formats() -> list[CheckpointFormat]:
    return list(_FORMATS.values())


def detect_checkpoint_format(path: str | Path) -> CheckpointFormat:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    for fmt in _FORMATS.values():
        if fmt.detect(path):
            return fmt
    known = "\n".join(f"  - {f.name}: {f.description}" for f in _FORMATS.values())
    raise ValueError(f"{path}: not a checkpoint layout this version can load. Known layouts:\n{known}")


def load_checkpoint(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    format: str | None = None,
    config_path: str | Path | None = None,
    base_path: str | Path | None = None,
) -> SongBloom:
    """Build the model stored at ``path`` (format detected unless ``format`` names one).

    ``base_path``: the base model (any format here) for an adapter directory or an adapter-only checkpoint.
    """
    path = Path(path)
    if format is not None:
        if format not in _FORMATS:
            raise ValueError(f"unknown checkpoint format {format!r}; registered: {sorted(_FORMATS)}")
        fmt = _FORMATS[format]
    else:
        fmt = detect_checkpoint_format(path)
    logger.info("loading %s as %s", path, fmt.name)
    opts = LoadOptions(
        torch.device(device),
        dtype,
        Path(config_path) if config_path is not None else None,
        Path(base_path) if base_path is not None else None,
    )
    return fmt.load(path, opts)


def load_release(
    model_name: str,
    local_dir: str | Path | None = None,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    local_only: bool = False,
) -> SongBloom:
    """A released model by name: from ``local_dir`` when its files are there, else the Hugging Face Hub."""
    from songbloom.api import SongBloom

    return SongBloom.from_pretrained(model_name, local_dir=local_dir, device=device, dtype=dtype, local_only=local_only)


# ------------------------------------------------------------------------------------------------ release layouts
def _yaml_candidates(directory: Path) -> list[Path]:
    out = []
    for p in sorted(directory.glob("*.y*ml")):
        try:
            head = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if "\nmodel:" in "\n" + head and "pretrained_path" in head:
            out.append(p)
    return out


def _detect_release_dir(path: Path) -> bool:
    return path.is_dir() and len(_yaml_candidates(path)) == 1


def _load_release_dir(path: Path, opts: LoadOptions) -> SongBloom:
    from songbloom.api import SongBloom

    return SongBloom.from_release_dir(path, device=opts.device, dtype=opts.dtype)


def _yaml_naming(pt: Path) -> Path | None:
    """The release YAML beside ``pt``: ``<stem>.yaml``, else the only model YAML whose pretrained_path names it."""
    same_stem = [pt.with_suffix(s) for s in (".yaml", ".yml") if pt.with_suffix(s).is_file()]
    if same_stem:
        return same_stem[0]
    naming = []
    for y in _yaml_candidates(pt.parent):
        for line in y.read_text(encoding="utf-8").splitlines():
            if line.strip().startswith("pretrained_path:") and pt.name in line:
                naming.append(y)
    return naming[0] if len(naming) == 1 else None


def _detect_release_pt(path: Path) -> bool:
    return path.is_file() and path.suffix in WEIGHT_SUFFIXES and _yaml_naming(path) is not None


def _load_release_pt(path: Path, opts: LoadOptions) -> SongBloom:
    """A release ``.pt`` (``model.*`` + ``vae.vae.*``), its settings from the model YAML beside it."""
    from songbloom.api import SongBloom
    from songbloom.checkpoint import load_vae_checkpoint, read_release_checkpoint, strict_load
    from songbloom.config import SongBloomConfig
    from songbloom.models.songbloom import SongBloomModel
    from songbloom.models.vae import OobleckVAE, VAEConfig

    yaml_path = opts.config_path or _yaml_naming(path)
    if yaml_path is None:
        raise FileNotFoundError(
            f"{path}: no model YAML found beside it ({path.with_suffix('.yaml').name}, or one whose "
            "pretrained_path names this file); the model settings are read from that YAML"
        )
    cfg = SongBloomConfig.from_release_yaml(yaml_path)
    if not cfg.vae_config_path or not Path(cfg.vae_config_path).is_file():
        raise FileNotFoundError(f"{yaml_path}: the VAE config vae.vae_cfg={cfg.vae_config_path!r} does not exist")
    gen_sd, vae_sd, _ = read_release_checkpoint(path, require_vae=False)
    model = SongBloomModel(cfg.model)
    strict_load(model, gen_sd, what=f"generator from {path}")
    vae = OobleckVAE(VAEConfig.from_json(cfg.vae_config_path))
    vae_source = path
    if not vae_sd:
        if not cfg.vae_ckpt_path or not Path(cfg.vae_ckpt_path).is_file():
            raise FileNotFoundError(f"{path} holds no VAE and {yaml_path} names no existing vae.vae_ckpt")
        vae_sd, vae_source = load_vae_checkpoint(cfg.vae_ckpt_path), Path(cfg.vae_ckpt_path)
    strict_load(vae, vae_sd, what=f"VAE from {vae_source}")
    cfg.pretrained_path = str(path.resolve())
    return SongBloom._finish(cfg, model, vae, opts.device, opts.dtype)


register_checkpoint_format(
    CheckpointFormat(
        "release_dir",
        "a directory with one release model YAML whose ???/ paths name files in that directory",
        _detect_release_dir,
        _load_release_dir,
    )
)
register_checkpoint_format(
    CheckpointFormat(
        "release_pt",
        "a release .pt (model.* + vae.vae.*) with its model YAML beside it (<stem>.yaml or naming it)",
        _detect_release_pt,
        _load_release_pt,
    )
)


# Lightning training checkpoints, our merged exports and PEFT adapter directories (songbloom.export).
import songbloom.migration.fork_format  # noqa: E402,F401,I001  (the public fork's .ckpt: registers "fork_ckpt")
from songbloom.inference import formats as _formats  # noqa: E402,F401  (registers on import)
