"""Everything about a checkpoint on disk: reading it safely, loading it strictly, and every format we know.

- :mod:`~songbloom.checkpoints.registry`: detect a path's format and load it as a
  :class:`~songbloom.checkpoints.bundle.SongBloom` (:func:`load_checkpoint`).
- :mod:`~songbloom.checkpoints.formats`: one module per format (release directory and ``.pt``, training
  checkpoint, merged export, PEFT adapter, the public fork's ``.ckpt``), each with its reader and writer.
- :mod:`~songbloom.checkpoints.safe_load` (weights-only reading), :mod:`~songbloom.checkpoints.strict`
  (strict loading with a mismatch report), :mod:`~songbloom.checkpoints.vae` (the one VAE loader),
  :mod:`~songbloom.checkpoints.keys` (key and file names), :mod:`~songbloom.checkpoints.release_files`
  (finding release files locally or on the Hub), :mod:`~songbloom.checkpoints.init_weights` (a run's
  initial weights).

Importing the package registers the built-in formats.
"""

from songbloom.checkpoints import formats as _formats  # noqa: F401  (registers the built-in formats)
from songbloom.checkpoints.bundle import SongBloom, find_release_yaml, load_release
from songbloom.checkpoints.registry import (
    WEIGHT_SUFFIXES,
    CheckpointFormat,
    LoadOptions,
    checkpoint_formats,
    detect_checkpoint_format,
    load_checkpoint,
    register_checkpoint_format,
)
from songbloom.checkpoints.strict import CheckpointMismatchError, strict_load

__all__ = [
    "WEIGHT_SUFFIXES",
    "CheckpointFormat",
    "CheckpointMismatchError",
    "LoadOptions",
    "SongBloom",
    "checkpoint_formats",
    "detect_checkpoint_format",
    "find_release_yaml",
    "load_checkpoint",
    "load_release",
    "register_checkpoint_format",
    "strict_load",
]
