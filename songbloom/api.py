"""One-call Python API: build SongBloom (generator + VAE + vocabulary) from a release directory or name.

Example::

    from songbloom.checkpoints.bundle import SongBloom

    sb = SongBloom.from_release_dir("checkpoints/songbloom_full_150s")   # or SongBloom.from_pretrained(name)
    out = sb.teacher_forced(x_sketch, x_latent, x_len, lyrics=["[verse] n i3 h ao3 ."], prompt_wav=wav)

Any checkpoint we know (a release, a training checkpoint, an export, a PEFT adapter, the public fork's
``.ckpt``) loads with :func:`load_checkpoint`. The generator (``sb.model``) may run in bf16; the VAE always
runs in float32.
"""

from __future__ import annotations

from songbloom.checkpoints import load_checkpoint
from songbloom.checkpoints.bundle import SongBloom, find_release_yaml
from songbloom.checkpoints.release_state import read_release_checkpoint
from songbloom.checkpoints.strict import strict_load
from songbloom.checkpoints.vae import load_vae_checkpoint
from songbloom.config import SongBloomConfig
from songbloom.models.conditioners import ConditionTensors
from songbloom.models.songbloom import ForwardOutput, SongBloomModel
from songbloom.models.vae import OobleckVAE, VAEConfig
from songbloom.text.vocab import Vocabulary

__all__ = [
    "ConditionTensors",
    "ForwardOutput",
    "OobleckVAE",
    "SongBloom",
    "SongBloomConfig",
    "SongBloomModel",
    "VAEConfig",
    "Vocabulary",
    "find_release_yaml",
    "load_checkpoint",
    "load_vae_checkpoint",
    "read_release_checkpoint",
    "strict_load",
]
