"""Deprecated alias of songbloom.checkpoints.formats.peft_adapter (and neighbours); see docs/migration.md."""

from songbloom.checkpoints.formats.peft_adapter import (
    ADAPTER_NAME,
    PEFT_PREFIX,
    is_adapter_dir,
    load_peft_adapter,
    merge_peft_adapter,
    read_adapter_meta,
    save_peft_adapter,
)
from songbloom.checkpoints.keys import ADAPTER_CONFIG, ADAPTER_WEIGHTS
from songbloom.checkpoints.keys import ADAPTER_META as SONGBLOOM_META
from songbloom.config.model import SongBloomConfig
from songbloom.models.songbloom import SongBloomModel
from songbloom.utils.atomic import atomic_write, atomic_write_text
from songbloom.utils.deprecation import warn_moved

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_NAME",
    "ADAPTER_WEIGHTS",
    "PEFT_PREFIX",
    "SONGBLOOM_META",
    "SongBloomConfig",
    "SongBloomModel",
    "atomic_write",
    "atomic_write_text",
    "is_adapter_dir",
    "load_peft_adapter",
    "merge_peft_adapter",
    "read_adapter_meta",
    "save_peft_adapter",
]

warn_moved(__name__, "songbloom.checkpoints.formats.peft_adapter")
