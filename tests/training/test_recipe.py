"""The training recipe for small data (issue 20, item 4): one test per item, each on a tiny CPU run.

Keys new with the recipe are checked in the composed default config first, so that a version without them
fails on an assertion (not on a composition error).
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest
import torch

from songbloom.training.checkpointing import find_resume_checkpoint, step_checkpoints
from tests.training.conftest import TINY_CPU, run_flat


def _run_dir(tmp_path: Path, name: str) -> Path:
    return tmp_path / "outputs" / "runs" / name


def _group_of(optimizer: torch.optim.Optimizer, param: torch.nn.Parameter) -> dict:
    return next(g for g in optimizer.param_groups if any(p is param for p in g["params"]))


def test_fully_trained_tensors_have_their_own_learning_rate_and_weight_decay(compose):
    cfg = compose([*TINY_CPU, "lora=lm_all", "text.language=ja", "trainer.max_steps=1", "run_name=groups"])
    assert "fully_trained_lr" in cfg.training.optim and "fully_trained_weight_decay" in cfg.training.optim
    cfg.training.optim.lr = 1e-4
    cfg.training.optim.weight_decay = 0.1
    cfg.training.optim.fully_trained_lr = 1e-3
    cfg.training.optim.fully_trained_weight_decay = 0.05
    lit = run_flat(cfg)["_lit_module"]
    opt = lit.trainer.optimizers[0]
    params = dict(lit.model.named_parameters())
    (table,) = lit.trainable_report["fully_trained"]  # the lyric table: ja is a language the release never saw
    lyric = _group_of(opt, params[table])
    adapter = _group_of(opt, next(p for n, p in params.items() if "lora_A" in n and p.ndim == 2))
    assert lyric["initial_lr"] == pytest.approx(1e-3) and adapter["initial_lr"] == pytest.approx(1e-4)
    assert lyric["weight_decay"] == pytest.approx(0.05)  # the table decays at its own rate
    assert adapter["weight_decay"] == pytest.approx(0.1)


def test_validation_counts_optimizer_steps_not_micro_batches(compose, tmp_path: Path):
    overrides = [*TINY_CPU, "logger=csv", "trainer.max_steps=4", "trainer.accumulate_grad_batches=2",
                 "trainer.val_check_interval=2", "run_name=val"]  # fmt: skip
    trainer = run_flat(compose(overrides))["_lit_module"].trainer
    assert trainer.fit_loop.epoch_loop.val_loop.batch_progress.total.completed == 2  # one batch per validation
    with open(_run_dir(tmp_path, "val") / "csv" / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("val/loss")]
    # Lightning logs a validation with the count of optimizer steps before the batch that ended it: N - 1.
    assert [int(r["step"]) + 1 for r in rows] == [2, 4]  # after optimizer steps 2 and 4, not every 2 micro-batches


def test_best_k_checkpoints_are_kept_apart_and_never_resumed(compose, tmp_path: Path):
    overrides = [*TINY_CPU, "trainer.max_steps=6", "trainer.val_check_interval=1", "run_name=best"]
    cfg = compose(overrides)
    assert "best_checkpoint" in cfg.callbacks
    cfg.callbacks.best_checkpoint.save_top_k = 2
    run_flat(cfg)
    ck = _run_dir(tmp_path, "best") / "checkpoints"
    best = ck / "best"
    files = sorted(p.name for p in best.glob("*.ckpt"))
    assert len(files) == 2, files
    index = json.loads((best / "index.json").read_text())["files"]
    assert sorted(index) == files
    scores = sorted(e["score"] for e in index.values())
    assert all(s >= 0 for s in scores)
    assert find_resume_checkpoint(ck) == ck / "last.ckpt"  # never a best-k file


def test_early_stopping_stops_when_validation_stops_improving(compose, tmp_path: Path):
    overrides = [*TINY_CPU, "trainer.max_steps=8", "trainer.val_check_interval=2", "run_name=early"]
    cfg = compose(overrides)
    assert "early_stopping" in cfg.callbacks
    cfg.callbacks.early_stopping.enabled = True
    cfg.callbacks.early_stopping.patience = 1
    cfg.callbacks.early_stopping.min_delta = 1e9  # nothing counts as an improvement after the first validation
    result = run_flat(cfg)
    assert result["steps"] == 4  # validations at 2 (the best) and 4 (no improvement: patience spent)


def test_early_stopping_without_validation_never_stops(compose):
    cfg = compose([*TINY_CPU, "trainer.max_steps=4", "trainer.limit_val_batches=0", "run_name=noval"])
    assert "early_stopping" in cfg.callbacks
    cfg.callbacks.early_stopping.enabled = True
    cfg.callbacks.early_stopping.patience = 1
    result = run_flat(cfg)
    assert result["steps"] == 4
    assert not (Path(result["run_dir"]) / "checkpoints" / "best").exists()  # nothing to rank without validation


def test_max_steps_from_target_epochs_and_a_memorisation_warning(compose, caplog):
    # 16 songs, batch 2: 8 batches per epoch; accumulation 2: 4 optimizer steps per epoch.
    cfg = compose([*TINY_CPU, "trainer.accumulate_grad_batches=2", "trainer.val_check_interval=100",
                   "run_name=epochs"])  # fmt: skip
    assert "target_epochs" in cfg.training and "memorisation_warning_epochs" in cfg.training
    cfg.trainer.max_steps = None
    cfg.training.target_epochs = 1.5
    cfg.training.memorisation_warning_epochs = 1.0
    with caplog.at_level(logging.WARNING):
        result = run_flat(cfg)
    assert result["steps"] == 6  # round(1.5 x 4)
    assert any("memorises" in r.getMessage() and "1.5 epochs" in r.getMessage() for r in caplog.records)


def test_checkpoint_names_survive_hydra_overrides_and_ckpt_path_resumes(compose, tmp_path: Path):
    overrides = [*TINY_CPU, "trainer.max_steps=2", "callbacks.checkpoint.every_n_steps=1", "run_name=names"]
    run_flat(compose(overrides))
    ck = _run_dir(tmp_path, "names") / "checkpoints"
    names = sorted(p.name for p in ck.glob("step*.ckpt"))
    assert names == ["step-0000001.ckpt", "step-0000002.ckpt"]
    first = ck / names[0]
    cfg = compose([*TINY_CPU, "trainer.max_steps=3", f"ckpt_path={first}", "run_name=from_ckpt_path"])  # unquoted
    result = run_flat(cfg)
    assert result["resumed_from"] == str(first)
    assert result["steps"] == 2  # steps 2 and 3 trained on top of step 1


def test_old_step_equals_files_are_still_resume_candidates(tmp_path: Path):
    torch.save({"global_step": 4}, tmp_path / "step=0000004.ckpt")
    torch.save({"global_step": 8}, tmp_path / "step-0000008.ckpt")
    assert [s for s, _ in step_checkpoints(tmp_path)] == [4, 8]
    assert find_resume_checkpoint(tmp_path) == tmp_path / "step-0000008.ckpt"
    (tmp_path / "step-0000008.ckpt").unlink()
    assert find_resume_checkpoint(tmp_path) == tmp_path / "step=0000004.ckpt"


def test_command_line_overrides_are_kept_in_the_run_dir(compose):
    overrides = [*TINY_CPU, "trainer.max_steps=1", "run_name=overrides"]
    result = run_flat(compose(overrides))
    path = Path(result["run_dir"]) / "overrides.txt"
    assert path.is_file()
    kept = path.read_text().splitlines()
    assert "trainer.max_steps=1" in kept and "run_name=overrides" in kept and "model=tiny" in kept


def test_rerunning_a_finished_run_does_no_work_and_opens_no_wandb_run(compose, tmp_path: Path):
    overrides = [*TINY_CPU, "logger=wandb", "trainer.max_steps=2", "run_name=again"]
    first = run_flat(compose(overrides))
    run_dir = _run_dir(tmp_path, "again")
    wandb_runs = sorted((run_dir / "wandb").glob("offline-run-*"))
    export = run_dir / "export" / "generator.safetensors"
    stamp = export.stat().st_mtime_ns
    second = run_flat(compose(overrides))
    assert export.stat().st_mtime_ns == stamp  # not exported again
    assert len(wandb_runs) == 1
    assert sorted((run_dir / "wandb").glob("offline-run-*")) == wandb_runs  # no new, empty W&B run
    assert second["steps"] == first["steps"] == 2


def test_log_files_get_one_readable_progress_line_every_n_steps(compose, tmp_path: Path, capsys):
    overrides = [*TINY_CPU, "trainer.max_steps=4", "trainer.enable_progress_bar=true",
                 "callbacks.progress_bar.log_file_every_n_steps=2", "run_name=progress"]  # fmt: skip
    run_flat(compose(overrides))  # pytest captures stdout: not a terminal, as in a batch job's log file
    log = (_run_dir(tmp_path, "progress") / "train.log").read_text()
    lines = [x for x in log.splitlines() if " step " in x and "/4 (" in x]
    assert len(lines) == 2 and "step 2/4 (50.0%)" in lines[0] and "step 4/4 (100.0%)" in lines[1], log[-2000:]
    assert "loss" in lines[0] and "eta" in lines[0]
    out = capsys.readouterr()
    assert "0%|" not in out.out + out.err  # no progress bar redrawn as lines


def test_metrics_file_steps_are_integers(compose):
    result = run_flat(compose([*TINY_CPU, "trainer.max_steps=2", "run_name=ints"]))
    rows = [json.loads(x) for x in (Path(result["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(type(r["step"]) is int for r in rows)


def test_run_dir_records_package_versions_and_the_songbloom_version(compose):
    from importlib import metadata

    import songbloom

    result = run_flat(compose([*TINY_CPU, "trainer.max_steps=1", "run_name=versions"]))
    path = Path(result["run_dir"]) / "versions.json"
    assert path.is_file()
    record = json.loads(path.read_text())
    assert record["songbloom"] in (songbloom.__version__, metadata.version("songbloom"))
    assert record["packages"]["torch"] == metadata.version("torch")
    assert record["packages"]["lightning"] == metadata.version("lightning")
