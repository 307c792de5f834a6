"""Every experiment config composes, and runs a training step on CPU with the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.training.conftest import EXPERIMENTS, TINY_CPU, run_flat

# Experiments that start from release weights are run from scratch here (the release-init path is covered
# by test_japanese_lora.py against a local release-layout folder).
SCRATCH_INIT = ["init.source=scratch", "sketch.codebook_path=null", "sketch.required=false"]


def test_expected_experiments_exist():
    assert {"demo", "japanese_lora", "full_finetune", "scratch"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_runs_one_step(compose, experiment: str):
    cfg = compose([f"experiment={experiment}", *TINY_CPU, *SCRATCH_INIT, "trainer.max_steps=1"])
    result = run_flat(cfg)
    run_dir = Path(result["run_dir"])
    assert run_dir.name.startswith(f"{experiment}-")
    assert result["steps"] == 1.0
    stored = json.loads((run_dir / "config.json").read_text())
    assert stored["experiment_name"] == experiment
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["songbloom_config"]["experiment_name"] == experiment
    assert ckpt["global_step"] == 1


def test_japanese_lora_declares_its_trainable_sets(compose):
    cfg = compose(["experiment=japanese_lora", *TINY_CPU, *SCRATCH_INIT, "trainer.max_steps=1"])
    result = run_flat(cfg)
    report = result["_lit_module"].trainable_report
    # A new codebook is not declared here (codebook_path=null, scratch init), but Japanese lyrics are.
    assert report["full_sets"] == ["lyric_embedding"]
    assert any(n.startswith("ar_transformer.") and ".mlp." in n for n in report["lora_modules"])
    assert any(n.startswith("nar_dit.") and ".self_attn." in n for n in report["lora_modules"])
    assert not any(".ff." in n for n in report["lora_modules"])


def test_missing_manifest_names_the_converters(compose):
    from songbloom.training.data import DataConfigError

    cfg = compose(["experiment=japanese_lora", "model=tiny", "trainer=cpu", "debug=ci", *SCRATCH_INIT])
    with pytest.raises(DataConfigError, match="data.manifest is required.*scripts/preprocess.py"):
        run_flat(cfg)


def test_missing_codebook_is_a_clear_error(compose):
    cfg = compose(["experiment=japanese_lora", *TINY_CPU, "init.source=scratch"])
    with pytest.raises(ValueError, match="sketch.codebook_path is required"):
        run_flat(cfg)


def test_fp16_is_refused(compose):
    cfg = compose([*TINY_CPU, "trainer.precision=16-mixed"])
    with pytest.raises(ValueError, match="fp16 precision is refused"):
        run_flat(cfg)
