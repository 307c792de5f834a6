"""Blocks wider than the probe's cap are probed at two narrower widths and extrapolated (what keeps the first
estimate of a ``full_*`` run within seconds): the widths are capped, and the extrapolation agrees with a probe at
the full width."""

from __future__ import annotations

import importlib

import pytest

from songbloom.config import SongBloomConfig
from songbloom.plan import probe, static
from tests.plan.measure import compose_run_config

BASE = ["experiment=demo", "data=synthetic", "debug=ci", "init.source=scratch", "num_threads=1"]


@pytest.mark.parametrize("preset", ["tiny", "small", "full_150s", "full_240s"])
def test_probe_widths_are_capped_and_keep_the_head_size(preset):
    m = SongBloomConfig.from_name(preset).model
    widths = probe.probe_widths(m.dim, m.head_dim)
    assert all(w <= max(m.dim, 1) for w in widths) and all(w % m.head_dim == 0 for w in widths)
    if m.dim <= probe.PROBE_WIDTH_CAP:
        assert widths == (m.dim,)  # tiny and small (the CPU validation) are probed at their own width
    else:
        assert widths == (probe.PROBE_WIDTH_CAP // 2, probe.PROBE_WIDTH_CAP)


def test_scale_width_is_exact_for_its_model():
    """Per unit of length ``beta * w + gamma``, constant ``alpha * w^2 + beta * w``: recovered exactly."""

    def const(w):
        return 3.0 * w * w + 5.0 * w

    def per(w):
        return 7.0 * w + 11.0

    def fit(w):
        return probe.Affine(probe.Measure(*[const(w)] * 4), probe.Measure(*[per(w)] * 4))

    got = probe.scale_width([fit(256), fit(512)], (256, 512), 1536)
    assert got.const.bwd_peak == pytest.approx(const(1536)) and got.per_unit.fwd_in == pytest.approx(per(1536))


@pytest.mark.parametrize(
    "overrides",
    [
        ["lora=all", "lora.base_dtype=bf16", "trainer.precision=bf16-mixed", "training.gradient_checkpointing=full"],
        ["training.gradient_checkpointing=none"],
    ],
    ids=["lora-bf16-full-ckpt", "full-train-fp32"],
)
def test_extrapolated_estimate_matches_the_full_width_probe(monkeypatch, tmp_path, overrides):
    """``small`` (width 512) probed at widths 128 and 256 against its probe at 512: every phase within 3 %."""
    from songbloom.config.run import parse_run_config
    from songbloom.plan import estimate

    rc = parse_run_config(
        compose_run_config([*BASE, f"paths.root_dir={tmp_path}", "model=small", "data.max_frames=3750", *overrides])
    )
    full = estimate(rc)
    est = importlib.import_module("songbloom.plan.estimate")
    built = []
    monkeypatch.setattr(probe, "PROBE_WIDTH_CAP", 256)
    monkeypatch.setattr(
        est, "narrow_meta_model", lambda rc, ps, w: built.append(w) or static.narrow_meta_model(rc, ps, w)
    )
    narrow = estimate(rc)
    assert sorted(built) == [128, 256]
    print({k: (narrow.phases[k] / 1e6, full.phases[k] / 1e6) for k in full.phases})
    for k, v in full.phases.items():
        assert narrow.phases[k] == pytest.approx(v, rel=0.03), k
