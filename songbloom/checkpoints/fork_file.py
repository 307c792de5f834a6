"""Read a Lightning ``.ckpt`` written by the public fork's ``train_japanese.py`` without running its code.

The fork's LightningModule calls ``save_hyperparameters(cfg)`` with an OmegaConf ``DictConfig``, so its
checkpoints pickle that object (and its class, under ``hparams_type``) next to the tensors. A plain
``torch.load(weights_only=True)`` refuses those globals. We keep ``weights_only=True`` and allow exactly the
OmegaConf container and node classes such a config is made of: their unpickling only restores dictionaries
of plain values and runs no code from the file. Anything else is still refused, with an error that says so.
"""

from __future__ import annotations

import collections
import logging
import typing
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from songbloom.checkpoints.safe_load import torch_load_safely

logger = logging.getLogger(__name__)

# Markers in the pickled object tree (the small data.pkl of a torch zip file; tensors live elsewhere).
_LIGHTNING_MARKER = b"pytorch-lightning_version"
_OUR_MARKER = b"songbloom_config"  # our own training checkpoints, handled by another format
_MAX_PICKLE_BYTES = 256 * 2**20  # key names and storage ids only; anything bigger is not a checkpoint we know
_FORK_KEY_MARKERS = (b"model.skeleton_emb", b"model.ar_transformer", b"model.nar_dit", b"vae.vae.")


def _omegaconf_safe_globals() -> list[Any]:
    """The classes an OmegaConf ``DictConfig`` pickle is built from (no callables beyond plain containers)."""
    from omegaconf import base, dictconfig, listconfig, nodes

    return [
        dictconfig.DictConfig,
        listconfig.ListConfig,
        base.ContainerMetadata,
        base.Metadata,
        nodes.AnyNode,
        nodes.StringNode,
        nodes.IntegerNode,
        nodes.FloatNode,
        nodes.BooleanNode,
        nodes.BytesNode,
        nodes.PathNode,
        typing.Any,
        collections.defaultdict,
        dict,
        list,
        int,
        float,
        str,
        bool,
    ]


@dataclass
class ForkCheckpoint:
    """The parts of a fork ``.ckpt`` we use: flat state dict, the stored config (plain dict) and bookkeeping."""

    path: Path
    state_dict: dict[str, Tensor]
    hparams: dict[str, Any] | None
    epoch: int | None = None
    global_step: int | None = None
    lightning_version: str | None = None
    other_keys: list[str] = field(default_factory=list)


def _pickle_bytes(path: Path) -> bytes | None:
    """The object-tree pickle of a torch zip checkpoint, or None when the file is not one."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if len(names) != 1 or zf.getinfo(names[0]).file_size > _MAX_PICKLE_BYTES:
                return None
            return zf.read(names[0])
    except (OSError, zipfile.BadZipFile):
        return None


def looks_like_fork_checkpoint(path: Path) -> bool:
    """Cheap check (reads only the small pickle, no tensor data): a Lightning checkpoint of the fork's module.

    Our own Lightning checkpoints carry ``songbloom_config`` and are left to their own format.
    """
    if not path.is_file() or path.suffix != ".ckpt":
        return False
    head = _pickle_bytes(path)
    if head is None:
        return False
    return (
        _LIGHTNING_MARKER in head
        and b"state_dict" in head
        and _OUR_MARKER not in head
        and any(m in head for m in _FORK_KEY_MARKERS)
    )


def _to_plain(obj: Any) -> Any:
    """A ``DictConfig`` (or plain dict) as plain Python containers, interpolations left unresolved."""
    from omegaconf import OmegaConf

    if OmegaConf.is_config(obj):
        return OmegaConf.to_container(obj, resolve=False)
    if isinstance(obj, Mapping):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_plain(v) for v in obj]
    return obj


def read_fork_checkpoint(path: str | Path) -> ForkCheckpoint:
    """Load a fork ``.ckpt`` with ``weights_only=True`` (OmegaConf config classes allowed, nothing else).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file needs other Python objects unpickled, or is not a Lightning checkpoint
            with a ``state_dict`` of tensors (message names the file and what was found).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"fork checkpoint {path} does not exist")
    obj = torch_load_safely(
        path,
        allowed_globals=_omegaconf_safe_globals(),
        what="tensors, plain containers and the OmegaConf config the fork stores",
        hint="If you trust the file, re-save its 'state_dict' (and 'hyper_parameters' as a plain dict via "
        "OmegaConf.to_container) with torch.save in the fork's environment and convert that copy.",
    )
    if not isinstance(obj, Mapping) or not isinstance(obj.get("state_dict"), Mapping):
        found = sorted(map(str, obj))[:10] if isinstance(obj, Mapping) else type(obj).__name__
        raise ValueError(f"{path}: not a Lightning checkpoint with a 'state_dict' (found {found})")
    sd = obj["state_dict"]
    bad = [k for k, v in sd.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise ValueError(f"{path}: state_dict has {len(bad)} non-tensor entries, e.g. {bad[:5]}")
    hparams = obj.get("hyper_parameters")
    plain = _to_plain(hparams) if hparams is not None else None
    if plain is not None and not isinstance(plain, dict):
        raise ValueError(f"{path}: hyper_parameters is a {type(plain).__name__}, expected a mapping (the fork's cfg)")
    other = sorted(str(k) for k in obj if k not in ("state_dict", "hyper_parameters"))
    logger.info("%s: %d tensors, stored config: %s", path, len(sd), "yes" if plain else "no")
    return ForkCheckpoint(
        path=path,
        state_dict=dict(sd),
        hparams=plain,
        epoch=obj.get("epoch"),
        global_step=obj.get("global_step"),
        lightning_version=obj.get("pytorch-lightning_version"),
        other_keys=other,
    )
