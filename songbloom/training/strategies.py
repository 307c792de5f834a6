"""Lightning strategy objects from the plain ``strategy:`` config group (``conf/strategy/*.yaml``).

Hydra configs stay data: block classes are named from a fixed table (no imports or ``eval`` of config strings),
and the FSDP wrap policy is built here, where the model's block classes are known.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

logger = logging.getLogger(__name__)


def wrappable_blocks() -> dict[str, type]:
    """Blocks FSDP may wrap as one shard unit: the sketch LM's decoder layer and the DiT block."""
    from songbloom.models.dit import DiTBlock
    from songbloom.models.lm import LlamaDecoderLayer

    return {"LlamaDecoderLayer": LlamaDecoderLayer, "DiTBlock": DiTBlock}


def _block_classes(names: list[str] | tuple[str, ...] | None, key: str) -> set[type]:
    table = wrappable_blocks()
    out = set()
    for name in names or ():
        short = str(name).rsplit(".", 1)[-1]
        if short not in table:
            raise ValueError(f"strategy.{key}: unknown block {name!r}; choose from {sorted(table)}")
        out.add(table[short])
    return out


def _timeout(cfg: dict[str, Any]) -> timedelta:
    return timedelta(seconds=float(cfg.get("timeout_s") or 1800))


def build_strategy(cfg: dict[str, Any] | None, *, lora_enabled: bool = False):
    """A Lightning strategy (or its registry name) for ``cfg`` = the resolved ``strategy`` group.

    ``kind``: ``auto`` (Lightning's choice), ``ddp``, or ``fsdp``. Returns a string for ``auto`` so the
    Trainer keeps its own defaults.
    """
    cfg = dict(cfg or {})
    kind = str(cfg.get("kind", "auto")).lower()
    if kind in ("auto", "single", "none"):
        return "auto"
    if kind == "ddp":
        from lightning.pytorch.strategies import DDPStrategy

        find_unused = bool(cfg.get("find_unused_parameters", False))
        if lora_enabled and find_unused:
            logger.warning(
                "strategy.find_unused_parameters=true with LoRA: every adapter receives a gradient, so this only "
                "adds a graph traversal per step; set it to false"
            )
        return DDPStrategy(
            find_unused_parameters=find_unused,
            gradient_as_bucket_view=bool(cfg.get("gradient_as_bucket_view", True)),
            static_graph=bool(cfg.get("static_graph", False)),
            process_group_backend=cfg.get("process_group_backend"),
            timeout=_timeout(cfg),
        )
    if kind == "fsdp":
        from lightning.pytorch.strategies import FSDPStrategy

        wrap = _block_classes(cfg.get("auto_wrap", ["LlamaDecoderLayer", "DiTBlock"]), "auto_wrap")
        act = cfg.get("activation_checkpointing")
        act_blocks = _block_classes(cfg.get("auto_wrap") if act is True else (act or []), "activation_checkpointing")
        state_dict_type = str(cfg.get("state_dict_type", "full"))
        if state_dict_type not in ("full", "sharded"):
            raise ValueError(f"strategy.state_dict_type={state_dict_type!r}: choose full or sharded")
        return FSDPStrategy(
            auto_wrap_policy=wrap or None,
            activation_checkpointing_policy=act_blocks or None,
            sharding_strategy=str(cfg.get("sharding_strategy", "FULL_SHARD")),
            state_dict_type=state_dict_type,
            cpu_offload=bool(cfg.get("cpu_offload", False)),
            # LoRA mixes frozen and trainable tensors inside one wrapped block: FSDP must keep original params.
            use_orig_params=bool(cfg.get("use_orig_params", True)),
            limit_all_gathers=bool(cfg.get("limit_all_gathers", True)),
            process_group_backend=cfg.get("process_group_backend"),
            timeout=_timeout(cfg),
        )
    raise ValueError(f"strategy.kind={kind!r}: choose auto, ddp or fsdp")
