"""Geometry, caching and gradient properties of the model core (no golden data needed)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from songbloom.config import ModelConfig, SongBloomConfig
from songbloom.models.songbloom import SongBloomModel


def _random_batch(cfg: ModelConfig, lengths: list[int], seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    t = max(lengths)
    x_sketch = torch.randint(0, cfg.num_pitch, (len(lengths), t), generator=g)
    x_latent = torch.randn(len(lengths), cfg.latent_dim, t, generator=g)
    for i, n in enumerate(lengths):
        x_sketch[i, n:] = cfg.eos_id
        x_latent[i, :, n:] = 0
    return x_sketch, x_latent, torch.tensor(lengths)


@pytest.mark.parametrize("preset", ["full_150s", "full_240s"])
def test_release_geometry_keys_and_shapes(shared_dir, preset):
    ref = json.loads((shared_dir / "reference" / "release_keys_full.json").read_text())
    expected = {k[len("model."):]: tuple(v) for k, v in ref["keys"].items() if k.startswith("model.")}
    with torch.device("meta"):
        model = SongBloomModel(SongBloomConfig.from_name(preset).model)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert sorted(set(expected) - set(got)) == []
    assert sorted(set(got) - set(expected)) == []
    assert {k: v for k, v in got.items() if expected[k] != v} == {}
    # The reference count covers every state-dict tensor (the DiT LayerNorm betas are buffers).
    assert sum(v.numel() for v in model.state_dict().values()) == ref["generator_params"] == 1_872_409_793


@pytest.mark.parametrize(
    "overrides",
    [
        dict(dim=64, num_heads=2, lm_layers=1, diff_layers=3, block_size=4, num_pitch=10, rotary_base_val=10000.0),
        dict(dim=128, num_heads=4, lm_layers=3, diff_layers=1, block_size=8, num_pitch=100, latent_dim=16),
    ],
)
def test_other_geometries_run_and_reload(overrides):
    cfg = SongBloomConfig.from_name("tiny", **overrides).model
    model = SongBloomModel(cfg).eval()
    xs, xl, xn = _random_batch(cfg, [2 * cfg.block_size, cfg.block_size])
    cond = model.encode_conditions([[1, 20, 30], None], torch.randn(2, cfg.latent_dim, 7))
    out = model(xs, xl, xn, cond)
    n_patches = int((xn // cfg.block_size).sum())
    assert out.ar_logit.shape == (2, xs.shape[1] + 1, cfg.num_pitch + 1)
    assert out.nar_pred.shape == (n_patches, cfg.block_size, cfg.latent_dim)
    clone = SongBloomModel(cfg)
    clone.load_state_dict(model.state_dict(), strict=True)
    with pytest.raises(RuntimeError, match="size mismatch"):
        SongBloomModel(SongBloomConfig.from_name("tiny").model).load_state_dict(model.state_dict())


def test_incremental_decoding_equals_full_forward():
    torch.manual_seed(0)
    cfg = SongBloomConfig.from_name("tiny").model
    lm = SongBloomModel(cfg).eval().ar_transformer
    x = torch.randn(3, 40, cfg.dim)
    with torch.no_grad():
        full = lm(x)
        cache = lm.new_cache(batch=3, max_len=64)
        parts = [lm(x[:, :25], cache)]  # prefix
        parts.append(lm(x[:, 25:31], cache))  # a chunk after cached positions
        for i in range(31, 40):  # single steps
            parts.append(lm(x[:, i : i + 1], cache))
    assert cache.length == 40
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=0)
    with pytest.raises(RuntimeError, match="KV cache full"):
        lm(torch.randn(3, 30, cfg.dim), cache)


def test_lm_is_causal():
    torch.manual_seed(0)
    cfg = SongBloomConfig.from_name("tiny").model
    lm = SongBloomModel(cfg).ar_transformer
    x = torch.randn(1, 12, cfg.dim, requires_grad=True)
    lm(x)[0, 5].sum().backward()
    assert x.grad[0, :6].abs().sum() > 0
    assert torch.all(x.grad[0, 6:] == 0)


@pytest.mark.parametrize("mode", ["full", 2, "selective"])
def test_gradient_checkpointing_matches_and_reaches_frozen_base_adapters(mode):
    """Non-reentrant checkpointing: same gradients, and an adapter on a frozen base still gets them."""
    torch.manual_seed(0)
    cfg = SongBloomConfig.from_name("tiny", lm_layers=3, diff_layers=3).model
    model = SongBloomModel(cfg).train()
    xs, xl, xn = _random_batch(cfg, [8, 8])
    cond = model.encode_conditions([[1, 9, 40], [2, 11]], torch.randn(2, cfg.latent_dim, 10))

    def loss_and_grads(checkpointing):
        model.set_gradient_checkpointing(checkpointing)
        model.zero_grad()
        torch.manual_seed(1)
        out = model(xs, xl, xn, cond.__class__(*(t.detach() for t in vars(cond).values())))
        loss = torch.nn.functional.cross_entropy(out.ar_logit.transpose(1, 2), out.ar_target,
                                                 ignore_index=cfg.special_id)
        loss = loss + 0.1 * torch.nn.functional.mse_loss(out.nar_pred, out.nar_target)
        loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    ref = loss_and_grads("none")
    got = loss_and_grads(mode)
    assert ref.keys() == got.keys()
    for name in ref:
        torch.testing.assert_close(got[name], ref[name], atol=1e-6, rtol=1e-4, msg=name)

    # Freeze everything, add a trainable scale inside one LM and one DiT layer (a stand-in for an adapter).
    for p in model.parameters():
        p.requires_grad_(False)
    lm_adapter = torch.nn.Parameter(torch.ones(()))
    dit_adapter = torch.nn.Parameter(torch.ones(()))
    lm_q, dit_out = model.ar_transformer.layers[0].self_attn.q_proj, model.nar_dit.layers[0].self_attn.to_out
    h1 = lm_q.register_forward_hook(lambda m, i, o: o * lm_adapter)
    h2 = dit_out.register_forward_hook(lambda m, i, o: o * dit_adapter)
    try:
        model.set_gradient_checkpointing(mode)
        out = model(xs, xl, xn, cond.__class__(*(t.detach() for t in vars(cond).values())))
        (out.ar_logit.float().pow(2).mean() + out.nar_pred.pow(2).mean()).backward()
    finally:
        h1.remove()
        h2.remove()
    assert lm_adapter.grad is not None and lm_adapter.grad.abs() > 0
    assert dit_adapter.grad is not None and dit_adapter.grad.abs() > 0


def test_ar_targets_and_dit_batch_bookkeeping():
    cfg = SongBloomConfig.from_name("tiny").model
    model = SongBloomModel(cfg).eval()
    p = cfg.block_size
    xs, xl, xn = _random_batch(cfg, [3 * p, p])
    with torch.no_grad():
        out = model(xs, xl, xn, model.encode_conditions([None, None], None))
    assert out.ar_target[0, : 3 * p].tolist() == xs[0].tolist() and out.ar_target[0, 3 * p] == cfg.eos_id
    assert out.ar_target[1, p] == cfg.eos_id and (out.ar_target[1, p + 1 :] == cfg.special_id).all()
    assert out.nar_pred.shape[0] == 4  # 3 + 1 valid patches, row order
    with torch.no_grad():  # zero noise: the flow target is -x0, so it exposes which patches were taken, in order
        out = model(xs, xl, xn, model.encode_conditions([None, None], None), noise=torch.zeros(4, p, cfg.latent_dim))
    expected_x0 = torch.cat([xl[0].T.reshape(3, p, -1), xl[1, :, :p].T[None]])
    torch.testing.assert_close(-out.nar_target, expected_x0)
    with pytest.raises(ValueError, match="multiples of block_size"):
        model(xs, xl, torch.tensor([3 * p - 1, p]), model.encode_conditions([None, None], None))


def test_models_package_imports_no_training_stack():
    code = (
        "import sys, songbloom.models.songbloom, songbloom.config;"
        "bad=[m for m in ('lightning','pytorch_lightning','hydra','wandb') if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="num_heads"):
        SongBloomConfig.from_name("tiny", dim=64, num_heads=3)
    with pytest.raises(ValueError, match="at least 32 dims"):
        SongBloomConfig.from_name("tiny", dim=64, num_heads=4)
    with pytest.raises(ValueError, match="timestep_sampler"):
        SongBloomConfig.from_name("tiny", timestep_sampler="cosine")
    cfg = SongBloomConfig.from_name("tiny")
    assert SongBloomConfig.from_dict(cfg.to_dict()) == cfg
