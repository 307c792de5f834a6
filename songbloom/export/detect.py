"""Cheap layout checks for the checkpoint-format registry: no tensor reads and no heavy imports."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

TRAINING_CONFIG_KEY = "songbloom_config"  # the run config our LightningModule stores in every checkpoint
GENERATOR_FILE = "generator.safetensors"
CONFIG_FILE = "config.json"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def is_training_checkpoint(path: str | Path) -> bool:
    """A torch zip whose pickle (not its tensors) mentions our stored run config."""
    path = Path(path)
    if not path.is_file() or not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            pkl = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if len(pkl) != 1 or zf.getinfo(pkl[0]).file_size > 256 * 2**20:
                return False
            return TRAINING_CONFIG_KEY.encode() in zf.read(pkl[0])
    except (OSError, zipfile.BadZipFile):
        return False


def is_merged_export(path: str | Path) -> bool:
    """A directory with ``generator.safetensors`` and a ``config.json`` holding a ``songbloom`` config."""
    path = Path(path)
    if not (path.is_dir() and (path / GENERATOR_FILE).is_file() and (path / CONFIG_FILE).is_file()):
        return False
    try:
        return "songbloom" in json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


def is_adapter_dir(path: str | Path) -> bool:
    """A PEFT adapter directory: ``adapter_config.json`` + ``adapter_model.safetensors``."""
    path = Path(path)
    return path.is_dir() and (path / ADAPTER_CONFIG).is_file() and (path / ADAPTER_WEIGHTS).is_file()
