"""What preprocessing produces: the settings, checked when built; all but the output folder define the shards."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

PROMPT_RULES = ("auto", "outside", "file")


@dataclass
class PreprocessConfig:
    """What preprocessing produces; everything here except the output folder goes into the provenance hash."""

    out_dir: str = "data/shards"
    sample_rate: int = 48000
    channels: int = 2
    block_size: int = 16
    seconds_per_tag: float = 1.0  # 1 s per non-vocal tag for the 150 s models, 5 s for the 240 s one
    segment_seconds: float = 150.0  # songs longer than this are cut into equal block-aligned segments
    min_seconds: float = 1.0
    prompt_seconds: float = 10.0
    # auto: the manifest's prompt_wav when given, else a clip of the same song outside the segment ('outside')
    prompt_rule: str = "auto"
    lyrics_policy: str = "error"
    lyric_max_len: int = 600
    num_pitch: int | None = None  # sketch ids must be < num_pitch; default: the codebook size, else 16384
    val_fraction: float | None = None  # None: one song held out from three songs on (tasks.auto_split)
    split_seed: int = 0
    length_tolerance: int = 0  # allowed |sketch frames - latent frames| before an item is rejected
    silence_db: float = -60.0
    min_sample_rate: int = 16000
    keep_untimed_long: bool = False  # keep songs longer than a segment that have no timestamps, whole
    store_prompt_audio: bool = True
    store_audio: bool = False
    latent_dtype: str = "float32"
    shard_maxcount: int = 64
    shard_maxsize: float = 5e8

    def __post_init__(self) -> None:
        problems = []
        if self.prompt_rule not in PROMPT_RULES:
            problems.append(f"prompt_rule={self.prompt_rule!r}: choose from {PROMPT_RULES}")
        if self.val_fraction is not None and not 0.0 <= self.val_fraction < 1.0:
            problems.append(f"val_fraction={self.val_fraction} must be in [0, 1)")
        if self.seconds_per_tag <= 0 or self.segment_seconds <= 0 or self.prompt_seconds <= 0:
            problems.append("seconds_per_tag, segment_seconds and prompt_seconds must be positive")
        if self.latent_dtype not in ("float32", "float16"):
            problems.append(f"latent_dtype={self.latent_dtype!r}: choose float32 or float16")
        if problems:
            raise ValueError("invalid preprocessing config:\n  - " + "\n  - ".join(problems))

    def provenance_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in ("out_dir", "shard_maxcount", "shard_maxsize"):
            d.pop(k)
        return d
