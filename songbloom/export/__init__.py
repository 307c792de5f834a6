"""Exports of trained models: the release layout, a PEFT adapter directory and merged safetensors.

One module per format: :mod:`~songbloom.export.release`, :mod:`~songbloom.export.peft_adapter` (save, load,
merge at a strength), :mod:`~songbloom.export.merged`; :mod:`~songbloom.export.training_checkpoint` rebuilds a
training checkpoint's model; :mod:`~songbloom.export.cli` is ``scripts/export.py``. Nothing is imported here,
so the cheap layout checks in :mod:`~songbloom.export.detect` stay cheap for the checkpoint registry.
"""
