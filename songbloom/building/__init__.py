"""Model building: a generator, its LoRA adapters and its trainable tensors from a run config, without files.

- :mod:`~songbloom.building.lora`: adapters through peft (targets by sub-network, merge, the base-weights view).
- :mod:`~songbloom.building.trainable`: which tensors train in full besides the adapters.
- :mod:`~songbloom.building.sketch_tables`: the sketch tables' hash, and how a LoRA run treats them (kept when the
  codebook was recovered from them).
- :mod:`~songbloom.building.model`: the generator's config and layout for a run.
"""
