"""What the demo songs are: the ``callbacks.demo_audio`` settings and one demo song's inputs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

BUILTIN_LYRICS: tuple[str, ...] = (
    # Already in the release's processed form (vocabulary symbols): no G2P is needed to build the demo set.
    "[intro] [verse] n i3 h ao3 , w o3 ai4 n i3 . [chorus] HH AH0 L OW1 , W ER1 L D . [outro]",
    "[intro] [verse] S AH1 N SH AY2 N , AO1 N DH AH0 R OW1 D . [chorus] l a4 l a4 , l a4 l a4 . [outro]",
)
"""The fallback demo lyrics when neither ``items`` nor validation data give any."""


@dataclass
class DemoAudioSettings:
    """``conf/callbacks/default.yaml: demo_audio``."""

    enabled: bool = True
    every_n_steps: int = 500
    at_start: bool = True  # a round before the first step: model == base there (a check that A/B is wired)
    at_end: bool = True
    num_items: int = 2  # songs taken from the validation data when ``items`` is empty
    items: list[dict[str, Any]] = field(default_factory=list)  # {lyrics, language, processed, prompt, seed}
    seconds: float = 10.0
    seed: int = 0
    time_budget_s: float = 300.0
    base: bool = True
    use_ema: bool = True
    vae: str = "auto"  # auto | tiny | release | <VAE json path>
    vae_ckpt: str | None = None
    prompt_latent: str = "mean"  # the VAE posterior mean (deterministic) or "sample" (seeded per song)
    sampling: dict[str, Any] = field(default_factory=dict)  # SamplingParams overrides, e.g. {steps: 16}
    spectrogram: bool = True

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> DemoAudioSettings:
        cfg = dict(cfg or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f"callbacks.demo_audio: unknown keys {unknown}; known keys: {sorted(known)}")
        out = cls(**cfg)
        if out.every_n_steps <= 0:
            raise ValueError(f"callbacks.demo_audio.every_n_steps must be positive, got {out.every_n_steps}")
        return out


@dataclass
class DemoItem:
    """One demo song: lyric ids, the readable lyrics that go beside the audio, an optional prompt, a seed."""

    index: int
    lyric_ids: list[int]
    lyrics: str
    seed: int
    prompt: Any = None  # songbloom.inference.prompt.PromptMoments | None

    def fingerprint(self) -> dict[str, Any]:
        p = self.prompt
        prompt_sum = None if p is None else [list(p.mean.shape), float(p.mean.double().sum())]
        return {"lyric_ids": list(self.lyric_ids), "seed": self.seed, "prompt": prompt_sum}
