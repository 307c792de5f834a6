"""Registers the public fork's Lightning ``.ckpt`` as checkpoint format ``fork_ckpt`` for infer.py and export."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from songbloom.inference.checkpoints import CheckpointFormat, LoadOptions, register_checkpoint_format
from songbloom.migration.fork_file import looks_like_fork_checkpoint

if TYPE_CHECKING:
    from songbloom.api import SongBloom

FORMAT_NAME = "fork_ckpt"


def _load(path: Path, opts: LoadOptions) -> SongBloom:
    from songbloom.migration.fork_loader import load_fork_checkpoint

    bundle, _ = load_fork_checkpoint(path, device=opts.device, dtype=opts.dtype, config_path=opts.config_path)
    return bundle


def register() -> None:
    """Idempotent: importing this module twice (reloads, tests) keeps one registration."""
    register_checkpoint_format(
        CheckpointFormat(
            FORMAT_NAME,
            "a Lightning .ckpt from the ayutaz/SongBloom fork's train_japanese.py (LoRA wrappers merged; "
            "settings from its stored hyper-parameters or a release YAML beside it)",
            looks_like_fork_checkpoint,
            _load,
        ),
        replace=True,
    )


register()
