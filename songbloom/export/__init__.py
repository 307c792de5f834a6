"""Exports of trained models: the release layout, a PEFT adapter directory and merged safetensors.

Each file here owns one format; :mod:`songbloom.export.cli` (``scripts/export.py``) writes them from any
checkpoint that :func:`songbloom.inference.checkpoints.load_checkpoint` can read.
"""

from songbloom.export.merged import export_generator, export_merged, load_merged_export
from songbloom.export.peft_adapter import load_peft_adapter, merge_peft_adapter, save_peft_adapter
from songbloom.export.release import export_release
from songbloom.export.training_checkpoint import TrainedModel, is_training_checkpoint, load_training_checkpoint

__all__ = [
    "TrainedModel",
    "export_generator",
    "export_merged",
    "export_release",
    "is_training_checkpoint",
    "load_merged_export",
    "load_peft_adapter",
    "load_training_checkpoint",
    "merge_peft_adapter",
    "save_peft_adapter",
]
