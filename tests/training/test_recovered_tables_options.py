"""``trainable.recovered_tables``: ``low_lr`` trains the kept tables in their own optimizer group (low rate, no
decay); ``lora`` puts adapters on the sketch classifier (the embedding stays frozen), and the checkpoint rebuild
and the PEFT export carry those adapters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from songbloom.building.lora import is_adapter_param
from songbloom.building.sketch_tables import SKETCH_TABLE_KEYS
from songbloom.checkpoints.formats.training import load_training_checkpoint
from tests.training.recovered import recovered_run, table_values


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread):
    """Tiny models in this module run on one torch thread (see tests/conftest.py)."""


def test_low_lr_trains_the_tables_in_their_own_group(tmp_path: Path):
    result = recovered_run(
        tmp_path,
        overrides=("trainable.recovered_tables=low_lr", "training.optim.recovered_tables_lr=1e-4",
                   "export.enabled=false"),
    )  # fmt: skip
    lit = result["_lit_module"]
    assert lit.sketch_tables["mode"] == "low_lr"
    assert lit.trainable_report["low_lr"] == list(SKETCH_TABLE_KEYS)
    groups = {g["name"]: g for g in lit.trainer.optimizers[0].param_groups}
    group = groups["recovered_tables"]
    params = dict(lit.model.named_parameters())
    assert {id(p) for p in group["params"]} == {id(params[n]) for n in SKETCH_TABLE_KEYS}
    assert group["initial_lr"] == pytest.approx(1e-4) and group["weight_decay"] == 0.0
    # japanese_lora: adapters at optim.lr, the lyric table at its fully_trained_lr; neither holds the tables.
    lrs = {n: g["initial_lr"] for n, g in groups.items()}
    assert lrs == pytest.approx({"adapters/decay": 3e-3, "fully_trained/decay": 5e-4, "recovered_tables": 1e-4})
    for other in (g for n, g in groups.items() if n != "recovered_tables"):
        assert not {id(p) for p in other["params"]} & {id(params[n]) for n in SKETCH_TABLE_KEYS}
    tables = table_values(lit.model.state_dict())
    for name in SKETCH_TABLE_KEYS:
        assert name in lit.nonzero_grad_names, name
        moved = float((tables[name] - result["release_sd"][name]).abs().max())
        assert 0 < moved <= 2 * 1e-4 * 1.01, (name, moved)  # Adam moves each value at most ~lr per step


def test_lora_adapts_the_classifier_and_rebuilds(tmp_path: Path):
    result = recovered_run(
        tmp_path, overrides=("trainable.recovered_tables=lora", "export.release_format=false")
    )
    lit = result["_lit_module"]
    assert lit.sketch_tables["mode"] == "lora"
    params = dict(lit.model.named_parameters())
    classifier = {n for n, p in params.items() if p.requires_grad and n.startswith("skeleton_classifier.")}
    assert classifier and all(is_adapter_param(n) for n in classifier)
    assert {n.split(".lora_")[0] for n in classifier} == {"skeleton_classifier.0", "skeleton_classifier.2"}
    assert classifier <= lit.nonzero_grad_names
    assert not any(n.startswith("skeleton_emb.") and p.requires_grad for n, p in params.items())
    for name, value in table_values(lit.model.state_dict()).items():  # the base layers themselves never move
        assert torch.equal(value, result["release_sd"][name]), name

    trained = load_training_checkpoint(Path(result["run_dir"]) / "checkpoints" / "last.ckpt")
    assert trained.sketch_tables.mode == "lora" and trained.lora.sketch_classifier
    rebuilt = dict(trained.model.named_parameters())
    for name in classifier:
        assert torch.equal(rebuilt[name], lit.model.get_parameter(name).detach()), name
    merged = trained.merged_model().state_dict()
    assert not torch.equal(merged["skeleton_classifier.2.weight"], result["release_sd"]["skeleton_classifier.2.weight"])
    assert torch.equal(merged["skeleton_emb.weight"], result["release_sd"]["skeleton_emb.weight"])

    adapter_dir = Path(result["export_peft_adapter"])
    adapter_cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    assert "skeleton_classifier" in adapter_cfg["target_modules"]
    from safetensors.torch import load_file

    assert any("skeleton_classifier.2.lora_A" in k for k in load_file(str(adapter_dir / "adapter_model.safetensors")))
