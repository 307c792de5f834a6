"""A LoRA run whose sketch codebook was recovered from the init weights' own sketch tables keeps those tables as
base weights: no gradient reaches them, the adapters and other declared tensors train, the checkpoint rebuilds
with the same layout and every export holds the release's tables bit for bit. A codebook recovered from other
tables warns and trains them, as any new codebook."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from songbloom.building.lora import is_adapter_param
from songbloom.building.sketch_tables import SKETCH_TABLE_KEYS, sketch_tables_sha256
from songbloom.checkpoints.formats.training import load_training_checkpoint
from songbloom.checkpoints.keys import SKETCH_TABLES_KEY
from songbloom.checkpoints.release_state import read_release_checkpoint
from tests.training.conftest import compose_config, run_flat
from tests.training.recovered import (
    other_tables_sha256,
    recovered_overrides,
    recovered_run,
    table_values,
    tiny_num_pitch,
    write_recovered_codebook,
)


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread):
    """Tiny models in this module run on one torch thread (see tests/conftest.py)."""


@pytest.fixture(scope="module")
def same_base(tmp_path_factory) -> dict:
    return recovered_run(tmp_path_factory.mktemp("same_base"))


def test_tables_stay_frozen_and_gradients_reach_the_rest(same_base):
    lit = same_base["_lit_module"]
    assert lit.sketch_tables["mode"] == "frozen", lit.sketch_tables
    assert lit.sketch_tables["init_sha256"] == lit.sketch_tables["recorded_sha256"]
    assert lit.trainable_report["full_sets"] == ["lyric_embedding"]  # Japanese rows train, the tables do not
    params = dict(lit.model.named_parameters())
    for name in SKETCH_TABLE_KEYS:
        assert not params[name].requires_grad and params[name].grad is None, name
    trainable = {n for n, p in params.items() if p.requires_grad}
    assert trainable and not set(SKETCH_TABLE_KEYS) & trainable
    assert any(is_adapter_param(n) for n in trainable)
    assert not sorted(trainable - lit.nonzero_grad_names), "a trainable tensor got no nonzero gradient"
    tables = table_values(lit.model.state_dict())
    for name in SKETCH_TABLE_KEYS:
        assert torch.equal(tables[name], same_base["release_sd"][name]), name
    assert same_base["steps"] == 2


def test_checkpoint_records_and_rebuilds_the_layout(same_base):
    ckpt_path = Path(same_base["run_dir"]) / "checkpoints" / "last.ckpt"
    ckpt = torch.load(ckpt_path, weights_only=True)
    assert ckpt[SKETCH_TABLES_KEY]["mode"] == "frozen"
    stored = {k.removeprefix("model.") for k in ckpt["state_dict"]}
    assert not set(SKETCH_TABLE_KEYS) & stored  # adapter-only checkpoint: the kept tables come from the base
    same_base["codebook"].unlink()  # the rebuild must not need the codebook: the layout is recorded
    trained = load_training_checkpoint(ckpt_path)
    assert trained.sketch_tables is not None and trained.sketch_tables.mode == "frozen"
    assert trained.fully_trained == [n for n in same_base["_lit_module"].trainable_report["fully_trained"]]
    assert not set(SKETCH_TABLE_KEYS) & set(trained.fully_trained)
    merged = trained.merged_model().state_dict()
    for name in SKETCH_TABLE_KEYS:
        assert torch.equal(merged[name], same_base["release_sd"][name]), name

    # scripts/export.py on the checkpoint: the same tables, and the layout in the export's metadata.
    from songbloom.cli.export import main as export_main

    out = Path(same_base["run_dir"]) / "cli_export"
    assert export_main(["export", str(ckpt_path), "--out", str(out), "--formats", "merged"]) == 0
    exported = load_file(str(next(out.rglob("generator.safetensors"))))
    for name in SKETCH_TABLE_KEYS:
        assert torch.equal(exported[name], same_base["release_sd"][name]), name
    config = json.loads(next(out.rglob("config.json")).read_text())
    assert config["sketch_tables"]["mode"] == "frozen"


def test_exports_hold_the_release_tables_bit_for_bit(same_base):
    release_sd = same_base["release_sd"]
    recorded = same_base["_lit_module"].sketch_tables["recorded_sha256"]
    assert sketch_tables_sha256(release_sd) == recorded
    merged = load_file(same_base["export_generator"])
    exported, _, _ = read_release_checkpoint(next(Path(same_base["export_release_dir"]).glob("*.pt")))
    for sd in (merged, exported):
        for name in SKETCH_TABLE_KEYS:
            assert sd[name].dtype == release_sd[name].dtype and torch.equal(sd[name], release_sd[name]), name
        assert sketch_tables_sha256(sd) == recorded
        # The adapters were merged: something else did change.
        assert any(not torch.equal(sd[k], release_sd[k]) for k in release_sd if k.startswith("ar_transformer."))
    adapter_cfg = json.loads((Path(same_base["export_peft_adapter"]) / "adapter_config.json").read_text())
    assert adapter_cfg["modules_to_save"] == ["condition_provider.conditioners.lyrics.output_proj"]
    config = json.loads((Path(same_base["run_dir"]) / "export" / "config.json").read_text())
    assert config["sketch_tables"]["mode"] == "frozen"


def test_resume_refuses_a_changed_layout(same_base):
    """The codebook file now names other tables: resuming would train tables the checkpoint kept frozen."""
    write_recovered_codebook(same_base["codebook"], other_tables_sha256(), tiny_num_pitch())
    ckpt = Path(same_base["run_dir"]) / "checkpoints" / "last.ckpt"
    extra = ("trainer.max_steps=3", "allow_config_change=true", f"resume={ckpt}", "export.enabled=false")
    cfg = compose_config(recovered_overrides(same_base["root"], same_base["release_dir"], same_base["codebook"], extra))
    with pytest.raises(ValueError, match=r"treated the sketch tables as 'frozen'.*resolves 'train'"):
        run_flat(cfg)


def test_tables_of_other_base_weights_warn_and_train(tmp_path: Path):
    result = recovered_run(tmp_path, same_tables=False, overrides=("export.enabled=false",))
    lit = result["_lit_module"]
    assert lit.sketch_tables["mode"] == "train"
    assert lit.trainable_report["full_sets"] == ["sketch_embedding", "sketch_classifier", "lyric_embedding"]
    log = (Path(result["run_dir"]) / "train.log").read_text()
    assert "WARNING" in log and "sketch tables differ" in log and "train in full as for any new codebook" in log
    tables = table_values(lit.model.state_dict())
    for name in SKETCH_TABLE_KEYS:
        assert not torch.equal(tables[name], result["release_sd"][name]), f"{name} did not train"
