"""Unit checks of the training pieces: loss, parameter groups, schedules, EMA cadence, gradient guard, LoRA."""

from __future__ import annotations

import math

import pytest
import torch

from songbloom.building.lora import LoRASettings, apply_lora, merge_lora
from songbloom.config import SongBloomConfig
from songbloom.models.songbloom import ForwardOutput, SongBloomModel
from songbloom.training.batch import as_training_batch, collate_songs
from songbloom.training.lit_module import SongBloomLitModule, TrainSettings
from songbloom.training.losses import songbloom_loss
from songbloom.training.optim import lr_lambda, no_decay_names, parameter_groups
from songbloom.training.synthetic_data import SyntheticSongs, SyntheticSpec
from tests.training.conftest import TINY_CPU, run_flat


def _tiny():
    return SongBloomConfig.from_name("tiny").model


def test_loss_ignores_special_id_and_weights_flow():
    logits = torch.randn(1, 3, 5)
    target = torch.tensor([[1, 2, 4]])
    pred, tgt = torch.zeros(2, 4, 3), torch.ones(2, 4, 3)
    out = ForwardOutput(logits, target, pred, tgt, torch.tensor([0.1, 0.9]))
    terms = songbloom_loss(out, ignore_id=4, flow_weight=0.5)
    ce = torch.nn.functional.cross_entropy(logits[0, :2], target[0, :2])
    assert torch.allclose(terms.ar_loss, ce)
    assert torch.allclose(terms.flow_loss, torch.tensor(1.0))
    assert torch.allclose(terms.loss, ce + 0.5)
    assert set(terms.flow_by_bucket) == {"0.00-0.25", "0.75-1.00"}


def test_no_weight_decay_on_norms_biases_embeddings():
    model = SongBloomModel(_tiny())
    skip = no_decay_names(model)
    assert "skeleton_emb.weight" in skip and "bos_token" in skip
    assert "ar_transformer.layers.0.input_layernorm.weight" in skip
    assert "nar_dit.layers.0.pre_norm.gamma" in skip and "block_conv.1.bias" in skip
    assert "ar_transformer.layers.0.self_attn.q_proj.weight" not in skip
    groups = {g["name"]: g for g in parameter_groups(model, 0.1)}
    assert groups["no_decay"]["weight_decay"] == 0.0 and groups["decay"]["weight_decay"] == 0.1
    n = sum(len(g["params"]) for g in groups.values())
    assert n == sum(1 for p in model.parameters() if p.requires_grad)


def test_schedules():
    cos = lr_lambda("cosine", 10, 110, 0.1)
    assert cos(0) == pytest.approx(0.1) and cos(9) == pytest.approx(1.0)
    assert cos(60) == pytest.approx(0.1 + 0.9 * 0.5) and cos(110) == pytest.approx(0.1)
    assert lr_lambda("constant", 0, 0)(1000) == 1.0
    assert lr_lambda("inverse_sqrt", 4, 0)(15) == pytest.approx(math.sqrt(4 / 16))


def test_ema_updates_once_per_optimizer_step(compose):
    cfg = compose([*TINY_CPU, "trainer.max_steps=3", "trainer.accumulate_grad_batches=2", "training.ema=true"])
    lit = run_flat(cfg)["_lit_module"]
    assert lit.global_step == 3
    assert lit.ema.num_updates == 3  # not 6 (micro-batches)


def test_gradient_guard_names_parameters_without_gradient(compose, monkeypatch):
    import importlib

    cfg = compose([*TINY_CPU, "trainer.max_steps=1", "trainer.val_check_interval=1"])
    # A trainable parameter that never enters the graph must be reported by name at the first step.
    run_mod = importlib.import_module("songbloom.training.run")
    original = run_mod.build_training_model

    def build_with_orphan(c, **kw):
        built = original(c, **kw)
        built.model.orphan = torch.nn.Linear(2, 2)
        return built

    monkeypatch.setattr(run_mod, "build_training_model", build_with_orphan)
    with pytest.raises(RuntimeError, match=r"no gradient.*orphan\.weight"):
        run_flat(cfg)


@pytest.mark.parametrize("preset", ["lm_attn", "dit_all", "all"])
def test_lora_adapters_get_gradients_in_lm_and_dit(preset):
    torch.manual_seed(0)
    cfg = _tiny()
    model = SongBloomModel(cfg)
    model.set_gradient_checkpointing("full")  # non-reentrant: adapters behind frozen inputs still get grads
    adapted = apply_lora(model, LoRASettings.from_config({"preset": preset, "rank": 4, "dropout": 0.0}))
    for n, p in model.named_parameters():  # B = 0 at init would zero A's gradient: perturb B
        if ".lora_B." in n:
            torch.nn.init.normal_(p, std=0.02)
    lit = SongBloomLitModule(model, TrainSettings(condition_dropout=False))
    ds = SyntheticSongs(cfg, SyntheticSpec(num_songs=2, min_frames=16, max_frames=16))
    batch = collate_songs([ds[0], ds[1]], block_size=cfg.block_size, eos_id=cfg.eos_id)
    model.train()
    lit.compute_losses(as_training_batch(batch), train=True).loss.backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_" in n for n, _ in trainable)
    missing = [n for n, p in trainable if p.grad is None or not bool(p.grad.ne(0).any())]
    assert not missing, missing
    if preset in ("lm_attn", "all"):
        assert any(n.startswith("ar_transformer.") for n in adapted)
    if preset in ("dit_all", "all"):
        assert any(n.startswith("nar_dit.") for n in adapted)
    if preset == "all":
        assert "block_conv.1" in adapted and "condition_provider.conditioners.prompt_wav.output_proj" in adapted


def test_merge_lora_gives_the_same_outputs_and_original_keys():
    torch.manual_seed(0)
    cfg = _tiny()
    reference_keys = set(SongBloomModel(cfg).state_dict())
    model = SongBloomModel(cfg)
    apply_lora(model, LoRASettings.from_config({"preset": "all", "rank": 4, "dropout": 0.0}))
    for n, p in model.named_parameters():
        if ".lora_B." in n:
            torch.nn.init.normal_(p, std=0.05)
    model.eval()
    ds = SyntheticSongs(cfg, SyntheticSpec(num_songs=1, min_frames=16, max_frames=16))
    b = as_training_batch(collate_songs([ds[0]], block_size=cfg.block_size, eos_id=cfg.eos_id))
    conds = model.encode_conditions(b.lyric_ids, b.prompt_latents, b.prompt_lengths, b.prompt_latents.shape[-1])
    t, noise = torch.full((4,), 0.3), torch.randn(4, cfg.block_size, cfg.latent_dim)
    with torch.no_grad():
        before = model(b.sketch, b.latents, b.lengths, conds, noise=noise, t=t)
        merged = merge_lora(model)
        after = merged(b.sketch, b.latents, b.lengths, conds, noise=noise, t=t)
    assert set(merged.state_dict()) == reference_keys
    assert torch.allclose(before.ar_logit, after.ar_logit, atol=1e-5)
    assert torch.allclose(before.nar_pred, after.nar_pred, atol=1e-5)


def test_condition_dropout_nulls_rows():
    cfg = _tiny()
    model = SongBloomModel(cfg)
    lit = SongBloomLitModule(model, TrainSettings())
    ds = SyntheticSongs(cfg, SyntheticSpec(num_songs=2, min_frames=16, max_frames=16))
    b = as_training_batch(collate_songs([ds[0], ds[1]], block_size=cfg.block_size, eos_id=cfg.eos_id))
    drop = {"lyrics": torch.tensor([True, False]), "prompt_wav": torch.tensor([True, False])}
    conds = lit.build_conditions(b, drop)
    null = model.encode_conditions([None], None)
    assert torch.equal(conds.lyrics[0], null.lyrics[0])
    assert conds.prompt[0].abs().sum() == 0 and conds.prompt[1].abs().sum() > 0
    assert not torch.equal(conds.lyrics[1], null.lyrics[0])
