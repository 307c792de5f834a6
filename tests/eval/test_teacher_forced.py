import pytest
import torch

from songbloom.eval import TeacherForcedMetrics, as_eval_batch, build_metric
from tests.eval.conftest import make_batch


def test_values_are_reproducible_and_match_a_manual_pass(tiny_model, tiny_model_cfg):
    batches = [make_batch(tiny_model_cfg, seed=s) for s in range(2)]
    tiny_model.train()  # the metric must switch to eval and back
    metric = TeacherForcedMetrics(timesteps=(0.25, 0.75), seed=3)
    for b in batches:
        metric.update(tiny_model, b)
    first = metric.compute()
    assert tiny_model.training
    metric.reset()
    for b in batches:
        metric.update(tiny_model, b)
    assert metric.compute() == first
    expected_keys = {"ar_loss", "sketch_accuracy", "sketch_perplexity", "flow_loss_t0.25", "flow_loss_t0.75"}
    assert expected_keys | {"flow_loss"} <= set(first)
    assert first["sketch_perplexity"] == pytest.approx(torch.tensor(first["ar_loss"]).exp().item(), rel=1e-6)
    # Untrained model over 65 classes: CE near log(65).
    assert abs(first["ar_loss"] - torch.log(torch.tensor(65.0)).item()) < 1.0
    # Targets: per row x_len sketch codes + the EOS.
    lens = sum(int(b["x_len"].sum()) + len(b["x_len"]) for b in batches)
    assert first["sketch_targets"] == lens

    # Manual check of the first batch's flow loss at t=0.25 with the documented noise stream.
    b = batches[0]
    single = TeacherForcedMetrics(timesteps=(0.25,), seed=3)
    single.update(tiny_model, b)
    tiny_model.eval()
    cfg = tiny_model_cfg
    n = int((b["x_len"] // cfg.block_size).sum())
    noise = torch.randn((n, cfg.block_size, cfg.latent_dim), generator=torch.Generator().manual_seed(3 * 1_000_003))
    with torch.no_grad():
        cond = tiny_model.encode_conditions([torch.tensor(x) for x in b["lyric_ids"]], b["prompt_latent"],
                                            b["prompt_len"], b["prompt_latent"].shape[-1])
        out = tiny_model(b["x_sketch"], b["x_latent"], b["x_len"], cond, noise=noise, t=torch.full((n,), 0.25))
    expected = (out.nar_pred - out.nar_target).pow(2).mean(dim=(1, 2)).mean().item()
    assert single.compute()["flow_loss_t0.25"] == pytest.approx(expected, rel=1e-5)


def test_a_different_model_gives_different_values(tiny_model, tiny_model_cfg):
    batch = make_batch(tiny_model_cfg)
    a = build_metric("teacher_forced", timesteps=(0.5,))
    a.update(tiny_model, batch)
    with torch.no_grad():
        tiny_model.skeleton_classifier[-1].bias.add_(torch.linspace(-3, 3, tiny_model_cfg.num_pitch + 1))
        tiny_model.project_out.bias.add_(0.5)
    b = build_metric("teacher_forced", timesteps=(0.5,))
    b.update(tiny_model, batch)
    ra, rb = a.compute(), b.compute()
    assert ra["ar_loss"] != rb["ar_loss"] and ra["flow_loss"] != rb["flow_loss"]


def test_distributed_sums_merge_like_one_process(tiny_model, tiny_model_cfg):
    b0, b1 = make_batch(tiny_model_cfg, seed=0), make_batch(tiny_model_cfg, seed=1)
    whole = TeacherForcedMetrics(timesteps=(0.5,))
    whole.update(tiny_model, b0)
    rank0, rank1 = TeacherForcedMetrics(timesteps=(0.5,)), TeacherForcedMetrics(timesteps=(0.5,))
    rank0.update(tiny_model, b0)
    rank1.update(tiny_model, b1)
    r1 = rank1.compute()
    rank0.load_state(rank0.state() + rank1.state())  # what an all_reduce(SUM) does
    merged, w = rank0.compute(), whole.compute()
    assert merged["sketch_targets"] == w["sketch_targets"] + r1["sketch_targets"]
    weighted = (w["ar_loss"] * w["sketch_targets"] + r1["ar_loss"] * r1["sketch_targets"]) / merged["sketch_targets"]
    assert merged["ar_loss"] == pytest.approx(weighted, rel=1e-9)


def test_training_batch_layout_and_ragged_lengths_are_accepted(tiny_model, tiny_model_cfg):
    batch = make_batch(tiny_model_cfg, frames=18)  # T not a multiple of block_size 4
    batch["x_len"] = torch.tensor([18, 13])
    renamed = {"sketch": batch["x_sketch"], "latents": batch["x_latent"], "lengths": batch["x_len"],
               "lyric_ids": batch["lyric_ids"], "prompt_latents": batch["prompt_latent"],
               "prompt_lengths": batch["prompt_len"]}
    m1, m2 = TeacherForcedMetrics(timesteps=(0.5,)), TeacherForcedMetrics(timesteps=(0.5,))
    m1.update(tiny_model, batch)
    m2.update(tiny_model, renamed)
    assert m1.compute() == m2.compute()
    assert m1.compute()["sketch_targets"] == 16 + 12 + 2  # lengths rounded down to whole blocks, + EOS each


def test_errors_name_the_problem(tiny_model, tiny_model_cfg):
    with pytest.raises(KeyError, match="x_sketch"):
        as_eval_batch({"x_latent": torch.zeros(1)})
    with pytest.raises(ValueError, match="no batches"):
        TeacherForcedMetrics().compute()
    batch = make_batch(tiny_model_cfg)
    batch["x_len"] = torch.tensor([3, 16])
    with pytest.raises(ValueError, match="shorter than one block"):
        TeacherForcedMetrics().update(tiny_model, batch)
