"""Configuration: the typed model config and presets, and the release-YAML dialect they are read from.

- :mod:`~songbloom.config.model`: :class:`SongBloomConfig` (model, inference and file settings) and presets.
- :mod:`~songbloom.config.release_yaml`: reading release YAMLs with safe resolvers (no ``eval``).
- :mod:`~songbloom.config.safe_eval`: the arithmetic the release YAMLs' ``${eval:...}`` needs, and no more.
- :mod:`~songbloom.config.run`: the typed run config (one dataclass per block of `conf/train.yaml`), parsed once.

This package imports no torch, Lightning, Hydra or W&B: reading a config is cheap.
"""

from songbloom.config.model import *  # noqa: F403  (every public name the module had as songbloom.config)
from songbloom.config.model import (
    DIFFUSION_OBJECTIVES,
    DIT_CFG_TYPES,
    PRESETS,
    TIMESTEP_SAMPLERS,
    InferenceConfig,
    ModelConfig,
    SongBloomConfig,
    sampling_problems,
)

__all__ = [
    "DIFFUSION_OBJECTIVES",
    "DIT_CFG_TYPES",
    "TIMESTEP_SAMPLERS",
    "PRESETS",
    "InferenceConfig",
    "ModelConfig",
    "SongBloomConfig",
    "sampling_problems",
]
