"""Full fine-tuning presets (``conf/memory/full_*``): the 24 GB ones shard with FSDP over 4 GPUs, and the plan
divides what FSDP shards by the world size.

Running FSDP itself is not testable on the CPU: Lightning 2.6 refuses it before any process starts ("The
strategy `fsdp` requires a GPU accelerator, but received `accelerator='cpu'`"; docs/memory.md). What the CPU can
check is checked here: the presets compose and parse, select the FSDP builder whose wrap policy takes every
sketch-LM layer and DiT block, the refusal itself (so a Lightning that starts allowing it is noticed), and the
sharded estimate.
"""

from __future__ import annotations

import dataclasses

import pytest

from songbloom.config.run import parse_run_config
from songbloom.plan.settings import from_run
from songbloom.plan.static import StaticBytes
from tests.plan.measure import compose_run_config

FULL = [f"full_{s}s_{gb}gb" for s in (150, 240) for gb in (24, 48, 80)]
FSDP_TARGET = "songbloom.training.strategies.fsdp"


def _rc(preset: str, tmp_path):
    return parse_run_config(
        compose_run_config(["experiment=full_finetune", f"memory={preset}", f"paths.root_dir={tmp_path}"])
    )


@pytest.mark.parametrize("preset", FULL)
def test_full_presets_compose_and_the_24gb_ones_shard_with_fsdp(preset, tmp_path):
    from lightning.pytorch.strategies import FSDPStrategy

    from songbloom.models.dit import DiTBlock
    from songbloom.models.lm import LlamaDecoderLayer
    from songbloom.training.strategies import build_strategy

    rc = _rc(preset, tmp_path)
    assert not rc.lora.enabled and rc.model.preset == preset.rsplit("_", 1)[0]
    if not preset.endswith("_24gb"):  # one GPU holds the whole run (docs/memory.md)
        assert (rc.strategy or {}).get("_target_") != FSDP_TARGET
        return
    assert rc.strategy["_target_"] == FSDP_TARGET and rc.trainer["devices"] == 4
    strategy = build_strategy(dict(rc.strategy))
    assert isinstance(strategy, FSDPStrategy)
    assert set(strategy.kwargs["auto_wrap_policy"]._module_classes) == {LlamaDecoderLayer, DiTBlock}
    ps = from_run(rc)
    assert ps.fsdp and ps.world_size == 4 and ps.sharding == "FULL_SHARD"


def test_lightning_refuses_fsdp_on_the_cpu(tmp_path):
    """Why no CPU test trains under FSDP (recorded in docs/memory.md): if this starts passing, write one."""
    import lightning as L

    from songbloom.training.strategies import build_strategy

    strategy = build_strategy({"_target_": FSDP_TARGET, "process_group_backend": "gloo"})
    with pytest.raises(ValueError, match="requires a GPU accelerator"):
        L.Trainer(accelerator="cpu", devices=2, strategy=strategy, default_root_dir=str(tmp_path), logger=False)


def test_the_sharded_estimate_divides_params_grads_and_optimizer_by_the_world_size(tmp_path):
    from songbloom.plan.estimate import _static

    ps = from_run(_rc("full_150s_24gb", tmp_path))
    st = StaticBytes(
        params=8_000_000, trainable=8_000_000, trainable_numel=4_000_000, largest_trainable=400_000,
        largest_block=1_000_000, total_numel=4_000_000,
    )  # fmt: skip
    one = _static(dataclasses.replace(ps, world_size=1), st)
    four = _static(ps, st)
    assert (one.params, one.grads, one.optimizer) == (8e6, 8e6, 16e6)
    assert (four.params, four.grads, four.optimizer) == (2e6, 2e6, 4e6)
    assert four.gathered > 0 and one.gathered == 0  # two blocks gathered in the compute dtype while they run
    grad_op = _static(dataclasses.replace(ps, sharding="SHARD_GRAD_OP"), st)
    assert (grad_op.params, grad_op.grads, grad_op.optimizer) == (8e6, 2e6, 4e6)  # parameters stay whole
