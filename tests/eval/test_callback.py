import json
import time

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from songbloom.eval.callback import EvaluationCallback, build_eval_callback
from songbloom.eval.teacher_forced import TeacherForcedMetrics
from songbloom.models.songbloom import SongBloomModel
from tests.eval.conftest import make_batch


class _TinyModule(L.LightningModule):
    """The smallest module training the real model teacher-forced (stand-in for the training stack's)."""

    def __init__(self, cfg):
        super().__init__()
        torch.manual_seed(0)
        self.model = SongBloomModel(cfg)

    def training_step(self, batch, batch_idx):
        cond = self.model.encode_conditions(batch["lyric_ids"], batch["prompt_latent"], batch["prompt_len"],
                                            batch["prompt_latent"].shape[-1])
        out = self.model(batch["x_sketch"], batch["x_latent"], batch["x_len"], cond)
        ce = F.cross_entropy(out.ar_logit.flatten(0, 1), out.ar_target.flatten(), ignore_index=self.model.special_id)
        return ce + 0.1 * F.mse_loss(out.nar_pred, out.nar_target)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=3e-3)


def _loader(cfg, n, seed):
    return [make_batch(cfg, seed=seed + i) for i in range(n)]


def test_callback_logs_to_wandb_offline_during_cpu_training(tmp_path, monkeypatch, tiny_model_cfg):
    from lightning.pytorch.loggers import WandbLogger

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    held_out = _loader(tiny_model_cfg, 2, seed=100)
    train = [held_out[0]] * 6  # overfit one held-out batch: its loss must fall
    callback = EvaluationCallback(held_out[:1], every_n_steps=3, timesteps=(0.5,), output_path=tmp_path / "ev.jsonl")
    wandb_logger = WandbLogger(offline=True, save_dir=str(tmp_path), project="songbloom-eval-test")
    trainer = L.Trainer(max_steps=6, accelerator="cpu", logger=wandb_logger, callbacks=[callback],
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=str(tmp_path))
    trainer.fit(_TinyModule(tiny_model_cfg), train_dataloaders=torch.utils.data.DataLoader(
        train, batch_size=None, collate_fn=lambda b: b))
    wandb_logger.experiment.finish()
    steps = [h["step"] for h in callback.history]
    assert steps == [3, 6]
    assert callback.history[-1]["eval/ar_loss"] < callback.history[0]["eval/ar_loss"]
    lines = [json.loads(x) for x in (tmp_path / "ev.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [3, 6] and lines[0]["eval/truncated"] == 0.0
    run_files = list(tmp_path.rglob("offline-run-*/run-*.wandb"))
    assert len(run_files) == 1, "no offline W&B run was written"
    # The offline run is a binary record log with JSON-encoded history items: the keys appear verbatim.
    # wandb-core appends the records asynchronously, even after finish() returns: wait for them (<= 30 s).
    deadline = time.monotonic() + 30
    while b"eval/ar_loss" not in run_files[0].read_bytes() and time.monotonic() < deadline:
        time.sleep(0.2)
    raw = run_files[0].read_bytes()
    assert b"eval/ar_loss" in raw and b"eval/flow_loss_t0.50" in raw


def test_time_budget_and_max_batches_are_reported(tiny_model_cfg):
    module = _TinyModule(tiny_model_cfg)
    trainer = L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False)
    batches = _loader(tiny_model_cfg, 3, seed=0)
    capped = EvaluationCallback(batches, max_batches=2, timesteps=(0.5,))
    out = capped.evaluate(trainer, module)
    assert out["eval/batches"] == 2 and out["eval/truncated"] == 0.0
    expected = TeacherForcedMetrics((0.5,))
    for b in batches[:2]:
        expected.update(module.model, b)
    assert out["eval/ar_loss"] == pytest.approx(expected.compute()["ar_loss"], rel=1e-12)
    boxed = EvaluationCallback(batches, time_budget_s=0.0, timesteps=(0.5,))
    assert boxed.evaluate(trainer, module) is None  # nothing fits in a zero budget: warned, not logged


def test_build_from_config(tmp_path):
    assert build_eval_callback(None) is None
    assert build_eval_callback({"enabled": False}) is None
    cb = build_eval_callback({"every_n_steps": 50, "timesteps": [0.2, 0.8]}, run_dir=tmp_path)
    assert cb.every_n_steps == 50 and cb.timesteps == (0.2, 0.8) and cb.output_path == tmp_path / "eval_metrics.jsonl"
    with pytest.raises(ValueError, match="unknown keys"):
        build_eval_callback({"every_n_step": 5})


class _FakeStrategy:
    """Sums what every simulated rank hands to ``reduce`` (filled in rank order, then read back)."""

    def __init__(self, shared):
        self.shared = shared

    def reduce(self, tensor, reduce_op="sum"):
        assert reduce_op == "sum"
        return sum(self.shared[len(tensor)])


class _FakeTrainer:
    def __init__(self, rank, world, shared):
        self.global_rank, self.world_size, self.global_step = rank, world, 5
        self.strategy, self.loggers = _FakeStrategy(shared), []


def test_distributed_mode_shards_batches_and_sums_like_one_process(tiny_model_cfg):
    module = _TinyModule(tiny_model_cfg)
    batches = _loader(tiny_model_cfg, 3, seed=7)
    single = EvaluationCallback(batches, timesteps=(0.5,)).evaluate(_FakeTrainer(0, 1, {}), module)
    # Simulate two ranks: each evaluates every other batch; the strategy then sums their states.
    states = []
    for rank in (0, 1):
        metric = TeacherForcedMetrics((0.5,))
        for i, b in enumerate(batches):
            if i % 2 == rank:
                metric.update(module.model, b, batch_index=i)
        states.append(metric.state())
    counts = [torch.tensor([2.0, 0.0], dtype=torch.float64), torch.tensor([1.0, 0.0], dtype=torch.float64)]
    shared = {len(states[0]): states, 2: counts}
    rank1 = EvaluationCallback(batches, timesteps=(0.5,), distributed=True)
    assert rank1.evaluate(_FakeTrainer(1, 2, shared), module) is None  # only rank 0 reports
    merged = EvaluationCallback(batches, timesteps=(0.5,), distributed=True).evaluate(
        _FakeTrainer(0, 2, shared), module)
    assert merged["eval/batches"] == 3.0
    for key in ("eval/ar_loss", "eval/sketch_accuracy", "eval/flow_loss_t0.50", "eval/sketch_targets"):
        assert merged[key] == pytest.approx(single[key], rel=1e-9)
