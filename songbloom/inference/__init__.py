"""Inference: the interleaved sampler, prompt encoding, checkpoint loading and the ``infer.py`` CLI.

Heavy optional pieces (the VAE, the lyric front end, the Hub client) are imported lazily by the modules
that need them.
"""

from songbloom.checkpoints.bundle import load_release
from songbloom.checkpoints.registry import (
    CheckpointFormat,
    LoadOptions,
    checkpoint_formats,
    detect_checkpoint_format,
    load_checkpoint,
    register_checkpoint_format,
)
from songbloom.inference.dit_sampler import PatchDenoiser, euler_sample
from songbloom.inference.generate import (
    GeneratedSong,
    GenerationHooks,
    PatchRecord,
    SamplingParams,
    StepRecord,
    build_cfg_prefix,
    encode_cfg_conditions,
    generate,
)
from songbloom.inference.pipeline import SongBloomPipeline, SongRequest, SongResult

__all__ = [
    "CheckpointFormat",
    "GeneratedSong",
    "GenerationHooks",
    "LoadOptions",
    "PatchDenoiser",
    "PatchRecord",
    "SamplingParams",
    "SongBloomPipeline",
    "SongRequest",
    "SongResult",
    "StepRecord",
    "build_cfg_prefix",
    "checkpoint_formats",
    "detect_checkpoint_format",
    "encode_cfg_conditions",
    "euler_sample",
    "generate",
    "load_checkpoint",
    "load_release",
    "register_checkpoint_format",
]
