"""The proxy's MuQ: the tiny random MuQ with its self-attention turned down, so a frame's features come mostly
from the sound around it.

Why: with random weights, self-attention mixes the whole clip into every frame. A hidden codebook on such
features gives ids that depend on audio seconds away: replacing everything from 0.8 s after a frame onwards moved
41 % of the hidden ids before it (seed 6, 100 codes, MuQ layers 1 and 2). No model renders such ids patch by patch,
so no teacher generates audio that carries its own ids, and the proxy measured the teacher, not the recovery. The
released sketch ids are rendered by the released DiT patch by patch, so they follow the local sound. Scaling each
self-attention output by :data:`ATTENTION_GAIN` keeps MuQ's architecture, its convolution module (about +-0.6 s of
context) and some clip-wide mixing, and brings that share to 5 % at 100 codes and 9 % at 256 (seed 6);
:func:`~songbloom.proxy.scenario.hidden_locality` measures it in every benchmark run. The gain was chosen on seed 6:
0.3 and 0.2 left 256-code ids too far-reaching (locality 0.85-0.88), 0.1 changed agreement by at most 0.01.
The weights are saved like any MuQ folder, so the recovery loads them with ``--muq`` as it would load the real one.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from songbloom.sketch import build_tiny_muq
from songbloom.sketch.muq_backbone import save_muq

logger = logging.getLogger(__name__)

ATTENTION_GAIN = 0.1


@torch.no_grad()
def damp_self_attention(muq: nn.Module, gain: float) -> int:
    """Scale the output projection of every conformer self-attention by ``gain``; returns how many were scaled."""
    scaled = 0
    for name, module in muq.named_modules():
        if name.endswith("self_attn.linear_out") and isinstance(module, nn.Linear):
            module.weight.mul_(gain)
            if module.bias is not None:
                module.bias.mul_(gain)
            scaled += 1
    if scaled == 0:
        raise ValueError("this MuQ has no conformer self-attention (no '*.self_attn.linear_out' module)")
    return scaled


def proxy_muq(seed: int, out_dir: str | Path | None = None, *, attention_gain: float = ATTENTION_GAIN) -> nn.Module:
    """The tiny random MuQ of ``seed`` with self-attention damped; saved to ``out_dir`` (``save_pretrained``)."""
    muq = build_tiny_muq(seed=seed)
    damp_self_attention(muq, attention_gain)
    if out_dir is not None:
        out = save_muq(muq, out_dir)
        logger.info("saved the proxy MuQ (tiny random, seed %d, self-attention x %g) to %s", seed, attention_gain, out)
    return muq
