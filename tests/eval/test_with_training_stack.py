"""The callback inside the training stack's CPU run, and evaluate.py on a train.py run dir."""

import json
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import WandbLogger

from songbloom.cli.evaluate import evaluate as main
from songbloom.eval.callback import EvaluationCallback

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY_CPU = ["model=tiny", "trainer=cpu", "data=synthetic", "debug=ci", "data.num_songs=8", "data.val_songs=2",
            "data.batch_size=2", "data.min_frames=16", "data.max_frames=32", "demo.enabled=false",
            "init.source=scratch", "sketch.codebook_path=null", "sketch.required=false"]


def _compose(tmp_path, overrides):
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"paths.root_dir={tmp_path}", *overrides], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    from songbloom.training.run import to_container

    return to_container(cfg)


@pytest.mark.slow
def test_callback_in_the_training_stacks_cpu_run_logs_to_wandb_offline(tmp_path, monkeypatch):
    from songbloom.checkpoints.init_weights import build_model
    from songbloom.training.callbacks import StepRecorder
    from songbloom.training.data import build_datamodule
    from songbloom.training.lit_module import SongBloomLitModule
    from songbloom.training.run import train_settings

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    c = _compose(tmp_path, ["experiment=demo", *TINY_CPU])
    L.seed_everything(0, verbose=False)
    model, sb_cfg, report, _ = build_model(c)
    dm = build_datamodule(c["data"], sb_cfg, seed=0)
    lit = SongBloomLitModule(model, train_settings(c), run_config=c, trainable_report=report)
    callback = EvaluationCallback(None, every_n_steps=2, timesteps=(0.5,), max_batches=1)  # dm.val_dataloader()
    trainer = L.Trainer(max_steps=4, accelerator="cpu", logger=WandbLogger(offline=True, save_dir=str(tmp_path)),
                        callbacks=[StepRecorder(None), callback], enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        default_root_dir=str(tmp_path))
    trainer.fit(lit, datamodule=dm)
    trainer.logger.experiment.finish()
    assert [h["step"] for h in callback.history] == [2, 4]
    assert all(h["eval/batches"] == 1.0 and h["eval/sketch_targets"] > 0 for h in callback.history)
    assert list(tmp_path.rglob("offline-run-*/run-*.wandb"))


@pytest.mark.slow
def test_evaluate_py_on_a_train_py_run_dir(tmp_path):
    from tests.training.conftest import run_flat

    result = run_flat(_compose(tmp_path, ["experiment=demo", *TINY_CPU, "trainer.max_steps=2"]))
    paths = main(["--run-dir", result["run_dir"], "--out", str(tmp_path / "report"), "--embedder", "mel",
                  "--seconds", "1", "--max-batches", "1", "--timesteps", "0.5"])
    report = json.loads(paths["json"].read_text())
    base, ft = report["models"]["base"], report["models"]["finetuned"]
    assert {"ar_loss", "flow_loss_t0.50", "fad", "audio_similarity"} <= set(ft["metrics"]) == set(base["metrics"])
    assert ft["metrics"]["ar_loss"] != base["metrics"]["ar_loss"]  # two steps of training moved the model
    assert ft["clips"] == base["clips"] == ft["paired_with_reference"] > 0
    assert (tmp_path / "report" / "audio" / "_reference").is_dir()
    assert paths["history"].read_bytes()[:4] == b"\x89PNG"
    assert torch.isfinite(torch.tensor(ft["metrics"]["fad"]))


def test_eval_callback_runs_under_the_trainers_precision_with_a_bf16_frozen_base(tmp_path):
    """A LoRA run with the frozen base held in bf16 only works under autocast; evaluation must use it too."""
    from tests.training.conftest import run_flat

    result = run_flat(_compose(tmp_path, [
        "experiment=demo", *TINY_CPU, "trainer.max_steps=2", "lora=lm_all", "lora.base_dtype=bf16",
        "trainer.precision=bf16-mixed", "callbacks.eval.enabled=true", "callbacks.eval.every_n_steps=1",
        "callbacks.eval.max_batches=1", "export.enabled=false",
    ]))
    lines = (Path(result["run_dir"]) / "eval_metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines][:2] == [1, 2]
