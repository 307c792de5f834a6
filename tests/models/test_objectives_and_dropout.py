"""Diffusion objectives, timestep samplers and condition dropout."""

from __future__ import annotations

import math

import pytest
import torch

from songbloom.config import SongBloomConfig
from songbloom.models.conditioners import ConditionDropout
from songbloom.models.songbloom import SongBloomModel


def test_v_objective_and_rectified_flow_targets():
    x0, noise, t = torch.randn(3, 4, 8), torch.randn(3, 4, 8), torch.tensor([0.0, 0.3, 1.0])
    rf = SongBloomModel(SongBloomConfig.from_name("tiny").model)
    x_t, target = rf.noise_and_target(x0, t, noise)
    torch.testing.assert_close(x_t[0], x0[0])
    torch.testing.assert_close(x_t[2], noise[2])
    torch.testing.assert_close(target, noise - x0)
    v = SongBloomModel(SongBloomConfig.from_name("tiny", diffusion_objective="v").model)
    x_t, target = v.noise_and_target(x0, t, noise)
    a, s = math.cos(0.3 * math.pi / 2), math.sin(0.3 * math.pi / 2)
    torch.testing.assert_close(x_t[1], a * x0[1] + s * noise[1])
    torch.testing.assert_close(target[1], a * noise[1] - s * x0[1])


@pytest.mark.parametrize("sampler", ["logit_normal", "uniform"])
def test_timestep_samplers_cover_unit_interval(sampler):
    model = SongBloomModel(SongBloomConfig.from_name("tiny", timestep_sampler=sampler).model)
    torch.manual_seed(0)
    t = model.sample_timesteps(4096, torch.device("cpu"))
    assert t.shape == (4096,) and 0 < t.min() and t.max() < 1
    if sampler == "uniform":  # Sobol points are evenly spread: every decile holds ~10%
        counts = torch.histc(t, bins=10, min=0, max=1)
        assert (counts - 409.6).abs().max() < 20
    else:  # logit-normal concentrates around 0.5
        assert abs(t.mean().item() - 0.5) < 0.02 and (t < 0.1).float().mean() < 0.05


def test_release_granularity_reproduces_the_private_generator_stream():
    """Batch mode: one uniform for CFG from generator A, one per attribute (config order) from generator B."""
    attrs = {"text": {"lyrics": 0.0}, "wav": {"prompt_wav": 0.1}}
    drop = ConditionDropout(0.1, attrs, granularity="batch", seed=1234)
    g_cfg, g_att = torch.Generator().manual_seed(1234), torch.Generator().manual_seed(1234)
    before = torch.get_rng_state()
    for _ in range(50):
        out = drop(3)
        u_cfg = torch.rand(1, generator=g_cfg).item()
        u_lyr, u_wav = torch.rand(1, generator=g_att).item(), torch.rand(1, generator=g_att).item()
        assert out["lyrics"].tolist() == [u_lyr < 0.0 or u_cfg < 0.1] * 3
        assert out["prompt_wav"].tolist() == [u_wav < 0.1 or u_cfg < 0.1] * 3
    assert torch.equal(before, torch.get_rng_state())  # the global RNG is untouched


def test_sample_granularity_rates_and_resume():
    drop = ConditionDropout(0.1, {"text": {"lyrics": 0.0}, "wav": {"prompt_wav": 0.1}}, granularity="sample")
    outs = [drop(64) for _ in range(100)]
    lyr = torch.stack([o["lyrics"] for o in outs]).float().mean().item()
    wav = torch.stack([o["prompt_wav"] for o in outs]).float().mean().item()
    assert 0.08 < lyr < 0.12  # only the all-condition drop removes lyrics
    assert 0.16 < wav < 0.22  # 1 - 0.9 * 0.9
    # rows of one batch differ (per-sample decisions), and the state round-trips
    assert any(0 < o["prompt_wav"].sum() < 64 for o in outs)
    state = drop.state_dict()
    a = drop(16)
    drop.load_state_dict(state)
    b = drop(16)
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="granularity"):
        ConditionDropout(0.1, {}, granularity="step")
