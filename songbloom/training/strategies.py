"""Lightning strategy objects for the ``strategy:`` config group (``conf/strategy/*.yaml``: ``_target_`` = one of
the builders below; ``trainer=ddp``/``trainer=fsdp`` select it).

Block classes are named from a fixed table (no imports or ``eval`` of the names), and the FSDP wrap policy is
built here, where the model's block classes are known.
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


def _timeout(timeout_s: float | None) -> timedelta:
    return timedelta(seconds=float(timeout_s or 1800))


def ddp(
    find_unused_parameters: bool = False,
    gradient_as_bucket_view: bool = True,
    static_graph: bool = False,
    process_group_backend: str | None = None,
    timeout_s: float = 1800,
    lora_enabled: bool = False,
):
    """``conf/strategy/ddp.yaml``: a full model copy per GPU."""
    from lightning.pytorch.strategies import DDPStrategy

    if lora_enabled and find_unused_parameters:
        logger.warning(
            "strategy.find_unused_parameters=true with LoRA: every adapter receives a gradient, so this only "
            "adds a graph traversal per step; set it to false"
        )
    return DDPStrategy(
        find_unused_parameters=bool(find_unused_parameters),
        gradient_as_bucket_view=bool(gradient_as_bucket_view),
        static_graph=bool(static_graph),
        process_group_backend=process_group_backend,
        timeout=_timeout(timeout_s),
    )


def fsdp(
    sharding_strategy: str = "FULL_SHARD",
    auto_wrap: list[str] | tuple[str, ...] = ("LlamaDecoderLayer", "DiTBlock"),
    activation_checkpointing: bool | list[str] = False,
    cpu_offload: bool = False,
    state_dict_type: str = "full",
    use_orig_params: bool = True,
    limit_all_gathers: bool = True,
    process_group_backend: str | None = None,
    timeout_s: float = 1800,
):
    """``conf/strategy/fsdp.yaml``: parameters, gradients and optimizer state sharded over the GPUs."""
    from lightning.pytorch.strategies import FSDPStrategy

    wrap = _block_classes(auto_wrap, "auto_wrap")
    act = activation_checkpointing
    act_blocks = _block_classes(auto_wrap if act is True else (act or []), "activation_checkpointing")
    if state_dict_type not in ("full", "sharded"):
        raise ValueError(f"strategy.state_dict_type={state_dict_type!r}: choose full or sharded")
    return FSDPStrategy(
        auto_wrap_policy=wrap or None,
        activation_checkpointing_policy=act_blocks or None,
        sharding_strategy=str(sharding_strategy),
        state_dict_type=state_dict_type,
        cpu_offload=bool(cpu_offload),
        # LoRA mixes frozen and trainable tensors inside one wrapped block: FSDP must keep original params.
        use_orig_params=bool(use_orig_params),
        limit_all_gathers=bool(limit_all_gathers),
        process_group_backend=process_group_backend,
        timeout=_timeout(timeout_s),
    )


def build_strategy(cfg: dict[str, Any] | None, *, lora_enabled: bool = False):
    """A Lightning strategy for ``cfg`` = the resolved ``strategy`` group (``_target_`` + its keys), or
    ``"auto"`` (Lightning's choice) when there is none."""
    from songbloom.training.instantiate import instantiate

    if not cfg:
        return "auto"
    if "_target_" not in cfg:
        raise ValueError(f"strategy {dict(cfg)!r} names no _target_: choose auto (strategy=null), ddp or fsdp")
    return instantiate(cfg, lora_enabled=lora_enabled)
