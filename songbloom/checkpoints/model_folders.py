"""Model folders from outside (MuQ, MuQ-MuLan, their towers): checked before a library is allowed to read them.

MuQ and MuQ-MuLan load their weights themselves, and two of their paths run code we never see: MuQ-MuLan loads an
audio tower whose name lacks ``muq`` (and its text tower's tokenizer) with ``trust_remote_code=True``, and MuQ
unpickles the file its config names as ``rvq_ckpt_path`` with a bare ``torch.load``. So before either library
touches a local folder we check it here and refuse with the reason: remote code asked for, a pickled checkpoint
named in the config, weights that are not safetensors, or ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` in the environment.
:func:`remote_code_off` also switches ``trust_remote_code`` off for the loads MuQ-MuLan makes.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from songbloom.checkpoints.safe_load import check_file_integrity, refuse_unsafe_torch_env

_REMOTE_CODE_KEYS = ("auto_map", "trust_remote_code")
_CONFIG_FILES = ("config.json", "tokenizer_config.json", "preprocessor_config.json")
_PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle")


class UnsafeModelFolderError(ValueError):
    """A model folder that would run code from outside if a library loaded it as it stands."""


def _read_json(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable JSON config ({e}); copy the model folder again") from e
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(obj).__name__}; copy the model folder again")
    return obj


def _refuse_remote_code(folder: Path) -> None:
    for name in _CONFIG_FILES:
        path = folder / name
        if not path.is_file():
            continue
        asked = [k for k in _REMOTE_CODE_KEYS if k in _read_json(path)]
        if asked:
            raise UnsafeModelFolderError(
                f"{path}: field {asked[0]!r} asks to run Python code shipped with the model (remote code), "
                "which we never allow; use a model folder without custom code (remove the field only if the "
                "model works without its code)"
            )
    scripts = sorted(p.name for p in folder.glob("*.py"))
    if scripts:
        raise UnsafeModelFolderError(
            f"{folder}: holds Python files {scripts[:5]} (remote code), which we never run; "
            "use a model folder of config and safetensors weights only"
        )


def _refuse_pickle_weights(folder: Path) -> None:
    safetensors = sorted(folder.glob("*.safetensors"))
    pickles = sorted(p.name for pattern in _PICKLE_WEIGHTS for p in folder.glob(pattern))
    if pickles and not safetensors:
        raise UnsafeModelFolderError(
            f"{folder}: weights {pickles[:5]} are pickles, which can run code when read; we load safetensors "
            "weights only: convert them to model.safetensors (save_pretrained(..., safe_serialization=True)) "
            "where you trust them"
        )
    for path in safetensors:
        check_file_integrity(path)


def check_hf_folder(folder: str | os.PathLike) -> None:
    """A local Hugging Face style folder: no remote code, safetensors weights only (intact)."""
    folder = Path(folder)
    _refuse_remote_code(folder)
    _refuse_pickle_weights(folder)


def _refuse_rvq_pickle(config_path: Path, config: dict[str, Any]) -> None:
    rvq = config.get("rvq_ckpt_path")
    if rvq and Path(str(rvq)).exists():
        raise UnsafeModelFolderError(
            f"{config_path}: field 'rvq_ckpt_path' names {rvq}, a pickled checkpoint MuQ would unpickle with a "
            "plain torch.load (which can run code); feature extraction does not need it: set "
            "\"rvq_ckpt_path\": null in that config.json"
        )


def _local_config(model_id_or_dir: str | os.PathLike, what: str) -> Path | None:
    """``config.json`` of a local model folder (None for a hub id); refuses an unsafe environment first."""
    refuse_unsafe_torch_env()
    folder = Path(model_id_or_dir)
    if not folder.exists():
        return None
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{what} directory {folder} has no config.json; expected a save_pretrained folder")
    return config_path


def check_muq_folder(model_id_or_dir: str | os.PathLike) -> None:
    """Refuse a local MuQ folder that would run code; a hub id is left to the hub (nothing local to check)."""
    config_path = _local_config(model_id_or_dir, "MuQ")
    if config_path is None:
        return
    folder = config_path.parent
    _refuse_rvq_pickle(config_path, _read_json(config_path))
    check_hf_folder(folder)
    if not any(folder.glob("*.safetensors")):
        raise UnsafeModelFolderError(f"{folder}: no model.safetensors; we load MuQ weights from safetensors only")


def _tower_name(config: dict[str, Any], tower: str, config_path: Path) -> str:
    section = config.get(tower)
    name = section.get("name") if isinstance(section, dict) else None
    if not isinstance(name, str) or not name:
        raise ValueError(f"{config_path}: field '{tower}.name' is missing; expected the {tower} folder or hub id")
    return name


def check_mulan_folder(model_id_or_dir: str | os.PathLike) -> None:
    """Refuse a local MuQ-MuLan folder whose towers would load remote code or pickles."""
    config_path = _local_config(model_id_or_dir, "MuQ-MuLan")
    if config_path is None:
        return
    folder = config_path.parent
    config = _read_json(config_path)
    check_hf_folder(folder)
    audio = _tower_name(config, "audio_model", config_path)
    if "muq" not in audio.lower():
        raise UnsafeModelFolderError(
            f"{config_path}: field 'audio_model.name' is {audio!r}; MuQ-MuLan loads an audio tower whose name "
            "lacks 'muq' with trust_remote_code=True (code from that folder would run), so we refuse it; "
            "point 'audio_model.name' at a MuQ folder or hub id"
        )
    text = _tower_name(config, "text_model", config_path)
    if "xlm-roberta" not in text:
        raise UnsafeModelFolderError(
            f"{config_path}: field 'text_model.name' is {text!r}; only XLM-RoBERTa text towers load without "
            "remote code; point 'text_model.name' at an xlm-roberta folder or hub id"
        )
    check_muq_folder(audio)
    if Path(text).exists():
        check_hf_folder(text)


class _NoRemoteCode:
    """``cls.from_pretrained`` with ``trust_remote_code=False`` whatever the caller asks for."""

    def __init__(self, cls: Any):
        self._cls = cls

    def from_pretrained(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["trust_remote_code"] = False
        return self._cls.from_pretrained(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cls, name)


_MULAN_LOADERS = ("AutoModel", "AutoModelForCausalLM", "AutoTokenizer", "XLMRobertaModel", "Wav2Vec2FeatureExtractor")


@contextlib.contextmanager
def remote_code_off() -> Iterator[None]:
    """While active, MuQ-MuLan's tower loaders run with ``trust_remote_code=False``."""
    import importlib

    patched: list[tuple[Any, str, Any]] = []
    for module_name in ("muq.muq_mulan.models.audio", "muq.muq_mulan.models.text"):
        module = importlib.import_module(module_name)
        for name in _MULAN_LOADERS:
            if hasattr(module, name):
                patched.append((module, name, getattr(module, name)))
                setattr(module, name, _NoRemoteCode(getattr(module, name)))
    try:
        yield
    finally:
        for module, name, original in reversed(patched):
            setattr(module, name, original)
