"""Names on disk: the keys our training checkpoints hold and the files our exports and releases use.

The LightningModule writes these keys and the readers in :mod:`songbloom.checkpoints.formats` read them;
both import them from here, so a renamed key cannot silently split writer and reader.
"""

from __future__ import annotations

# ---- key prefixes of a release .pt (the flat state dict of the official Lightning module)
GENERATOR_PREFIX = "model."
VAE_PREFIX = "vae.vae."
LEGACY_VAE_PREFIX = "model.condition_provider.conditioners.prompt_wav.tokenizer.vae."
"""Release-era duplicate of the VAE, registered as a sub-module of the prompt conditioner's tokenizer."""
VAE_KEY_ROOTS = ("encoder.", "decoder.")

# ---- keys of a training checkpoint (a Lightning .ckpt written by our train.py)
TRAINING_CONFIG_KEY = "songbloom_config"
"""The resolved run config: model preset and overrides, init source, LoRA settings, trainable sets."""
EMA_KEY = "songbloom_ema"
EMA_SEEN_STEP_KEY = "songbloom_ema_seen_step"
FROZEN_BASE_DROPPED_KEY = "songbloom_frozen_base_dropped"
"""Present (the number of dropped tensors) in an adapter-only checkpoint: the frozen base is not stored."""
RNG_RANKS_KEY = "songbloom_rng_ranks"
RNG_KEY = "songbloom_rng"
"""A single-process RNG state, written by checkpoints from before per-rank states were gathered."""
LICENCES_KEY = "songbloom_licences"
BASE_RECORD_KEY = "songbloom_base"
"""The base model's resolved path and fingerprint, taken at training start (songbloom.checkpoints.base_record)."""
SKETCH_TABLES_KEY = "songbloom_sketch_tables"
"""How a LoRA run treated the sketch tables (songbloom.building.sketch_tables.SketchTablesLayout, as a dict): a
rebuild uses it, since the codebook that decided it is not read again."""
STATE_DICT_KEY = "state_dict"
GLOBAL_STEP_KEY = "global_step"

# ---- files of a merged export directory
GENERATOR_FILE = "generator.safetensors"
CONFIG_FILE = "config.json"
VAE_FILE = "vae.safetensors"
VAE_CONFIG_FILE = "vae_config.json"
ADAPTER_FILE = "adapter.safetensors"

# ---- files of a PEFT adapter directory
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_META = "songbloom_adapter.json"

# ---- files of a release directory (the names the official code expects)
RELEASE_VAE_JSON = "stable_audio_1920_vae.json"
RELEASE_VAE_CKPT = "autoencoder_music_dsp1920.ckpt"
RELEASE_VOCAB = "vocab_g2p.yaml"
