"""Sampling settings on the command line: the flags every generating command shares, read into overrides of a
model's ``inference`` block (``infer.py``, sketch recovery). No torch here: ``--help`` stays fast.

Defaults are ``None``: the checkpoint's own settings apply unless a flag overrides them.
"""

from __future__ import annotations

import argparse
from typing import Any

from songbloom.config.model import DIT_CFG_TYPES

# How the repetition penalty treats recent ids (songbloom.inference.sampling.apply_repetition_penalty).
PENALTY_MODES = ("release", "corrected", "none")

_PLAIN_FLAGS = ("temp", "top_k", "top_p", "diff_temp", "steps", "dit_cfg_type", "penalty_window")


def add_sampling_arguments(group) -> None:
    """``--cfg-coef``, ``--temp``, ``--top-k``, ``--top-p``, ``--diff-temp``, ``--steps``, ``--dit-cfg-type``,
    ``--penalty-window`` and ``--penalty-mode`` on an argparse parser or group."""
    group.add_argument("--cfg-coef", type=float, nargs="+", default=None, help="one value, or LM and DiT values")
    group.add_argument("--temp", type=float, default=None)
    group.add_argument("--top-k", type=int, default=None)
    group.add_argument("--top-p", type=float, default=None)
    group.add_argument("--diff-temp", type=float, default=None)
    group.add_argument("--steps", type=int, default=None, help="DiT Euler steps")
    group.add_argument("--dit-cfg-type", default=None, choices=list(DIT_CFG_TYPES))
    group.add_argument("--penalty-window", type=int, default=None)
    group.add_argument("--penalty-mode", default="release", choices=list(PENALTY_MODES))


def sampling_overrides(args: argparse.Namespace, config) -> tuple[dict[str, Any], float]:
    """(keyword overrides for ``SamplingParams``, max_frames) from the flags of :func:`add_sampling_arguments`,
    plus ``--max-duration`` (seconds; default ``config.max_frames``) and ``--exact-release-rng`` when the parser
    has them. ``config`` is a :class:`~songbloom.config.SongBloomConfig`. Raises ValueError naming a bad flag."""
    over: dict[str, Any] = {
        "penalty_mode": getattr(args, "penalty_mode", "release"),
        "exact_release_rng": bool(getattr(args, "exact_release_rng", False)),
    }
    cfg_coef = getattr(args, "cfg_coef", None)
    if cfg_coef is not None:
        if len(cfg_coef) not in (1, 2):
            raise ValueError("--cfg-coef takes one value or two (LM, DiT)")
        over["cfg_coef"] = cfg_coef[0] if len(cfg_coef) == 1 else tuple(cfg_coef)
    for name in _PLAIN_FLAGS:
        if getattr(args, name, None) is not None:
            over[name] = getattr(args, name)
    max_duration = getattr(args, "max_duration", None)
    max_frames = config.max_frames if max_duration is None else max_duration * config.frame_rate
    return over, max_frames
