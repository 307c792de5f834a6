"""What the memory plan reads from a run config: geometry, crop, batch, precision, checkpointing, strategy.

Plain data derived from :class:`songbloom.config.run.RunConfig`; no torch here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from songbloom.config import SongBloomConfig
from songbloom.config.run import RunConfig

ATTENTION_KERNELS = ("flash", "efficient", "math")
DIT_EXTRA_TOKENS = 2  # [t-embedding, h] before the sketch, previous-patch and noisy-patch tokens


def _checkpoint_every(mode: Any) -> int:
    from songbloom.models.layers import parse_checkpointing

    return parse_checkpointing(mode)


def _world_size(trainer: Mapping[str, Any]) -> int:
    devices, nodes = trainer.get("devices", 1), trainer.get("num_nodes", 1)
    per_node = len(devices) if isinstance(devices, list | tuple) else devices
    try:
        return max(int(per_node), 1) * max(int(nodes or 1), 1)
    except (TypeError, ValueError):  # "auto" / -1: unknown until the job starts
        return max(int(nodes or 1), 1)


def _strategy_kind(strategy: Mapping[str, Any] | None) -> str:
    target = str((strategy or {}).get("_target_", ""))
    return target.rsplit(".", 1)[-1] if target else "single"


@dataclass(frozen=True)
class PlanSettings:
    """The knobs that decide peak memory (see :func:`from_run`)."""

    songbloom: SongBloomConfig
    frames: int  # latent frames per row (the crop), a multiple of block_size
    batch: int
    precision: str
    on_gpu: bool
    checkpoint_every: int  # 0 none, 1 every block, k every k-th, -1 selective
    attention: str
    world_size: int
    strategy: str  # single | ddp | fsdp | fsdp_hybrid | <other builder name>
    sharding: str  # FULL_SHARD | SHARD_GRAD_OP | ... (FSDP only)
    cpu_offload: bool
    ema: bool
    accumulate: int
    prompt_frames: int
    demo_seconds: float  # 0: no demo generation during training
    demo_use_ema: bool
    validation: bool
    release_vae: bool

    @property
    def block_size(self) -> int:
        return self.songbloom.model.block_size

    @property
    def patches(self) -> int:
        return self.frames // self.block_size

    @property
    def lm_tokens(self) -> int:
        """Tokens per row the LM sees: the fixed prefix, BOS, and (P sketch + 1 acoustic) per patch."""
        m = self.songbloom.model
        return m.prefix_len + 1 + (m.block_size + 1) * self.patches

    @property
    def dit_tokens(self) -> int:
        return DIT_EXTRA_TOKENS + 3 * self.block_size

    @property
    def autocast(self) -> bool:
        return self.precision.endswith("-mixed") and self.precision.startswith("bf16")

    @property
    def bf16_true(self) -> bool:
        return self.precision.startswith("bf16-true")

    @property
    def fsdp(self) -> bool:
        return self.strategy.startswith("fsdp")

    @property
    def seconds(self) -> float:
        return self.frames / self.songbloom.frame_rate

    def describe(self) -> str:
        ck = {0: "none", 1: "full", -1: "selective"}.get(self.checkpoint_every, f"every {self.checkpoint_every}")
        where = f"{self.world_size} x {self.strategy}" if self.world_size > 1 else self.strategy
        return (
            f"{self.seconds:g} s crops ({self.frames} frames), batch {self.batch}, {self.precision}, "
            f"checkpointing {ck}, attention {self.attention}, {where}"
        )


def _frames(rc: RunConfig, sb: SongBloomConfig, seconds: float | None) -> int:
    p = sb.model.block_size
    if seconds is not None:
        frames = int(round(float(seconds) * sb.frame_rate))
    else:
        frames = int(rc.data.get("max_frames") or math.ceil(sb.max_dur * sb.frame_rate))
    return max(p, frames // p * p)


def _demo(rc: RunConfig) -> tuple[float, bool]:
    demo = rc.callbacks.get("demo_audio") or {}
    if not demo or demo.get("enabled", True) is False:
        return 0.0, False
    return float(demo.get("seconds", 10.0)), bool(demo.get("use_ema", True))


def _validation(rc: RunConfig) -> bool:
    limit = rc.trainer.get("limit_val_batches", 1.0)
    return bool(limit) and float(limit) > 0


def from_run(rc: RunConfig, *, attention: str = "flash", seconds: float | None = None) -> PlanSettings:
    """The plan's settings of a typed run config (``seconds`` overrides the crop of ``data.max_frames``)."""
    from songbloom.building.model import preset_config

    if attention not in ATTENTION_KERNELS:
        raise ValueError(f"attention={attention!r}: choose from {ATTENTION_KERNELS}")
    sb = preset_config(rc)
    strategy = dict(rc.strategy or {})
    every = _checkpoint_every(rc.training.gradient_checkpointing)
    if strategy.get("activation_checkpointing"):
        every = 1  # FSDP wraps every LM/DiT block in a (non-reentrant) checkpoint
    demo_seconds, demo_ema = _demo(rc)
    tr = rc.trainer
    return PlanSettings(
        songbloom=sb,
        frames=_frames(rc, sb, seconds),
        batch=int(rc.data.get("batch_size", 1)),
        precision=str(tr.get("precision", "32-true")),
        on_gpu=str(tr.get("accelerator", "cpu")) not in ("cpu", "mps"),
        checkpoint_every=every,
        attention=attention,
        world_size=_world_size(tr),
        strategy=_strategy_kind(rc.strategy) if rc.strategy else "single",
        sharding=str(strategy.get("sharding_strategy", "FULL_SHARD")),
        cpu_offload=bool(strategy.get("cpu_offload", False)),
        ema=bool(rc.training.ema),
        accumulate=int(tr.get("accumulate_grad_batches", 1) or 1),
        prompt_frames=int(rc.data.get("prompt_frames") or round(sb.prompt_len * sb.frame_rate)),
        demo_seconds=demo_seconds,
        demo_use_ema=demo_ema,
        validation=_validation(rc),
        release_vae=rc.init.source == "release",
    )
