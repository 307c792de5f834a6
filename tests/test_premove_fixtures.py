"""Files written before the restructuring (tests/fixtures/premove, see make_fixtures.py there) still load and resume.

Every fixture goes through the public loader ``songbloom.inference.checkpoints.load_checkpoint`` (after the move
that path may be a re-export with a DeprecationWarning: allowed) and must give the teacher-forced outputs and
weights recorded in ``expected.json``. The run dir resumes training from its stored step.

What today's code needs: the adapter-only checkpoint records its base as ``init.release_dir=base_release``
(relative to the folder the run ran in) and the PEFT adapter names its base ``base_release``, so the tests copy
the fixtures into tmp_path and pass the base explicitly (``base_path=``, the API behind ``infer.py --base-ckpt``).
"""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path

import pytest

from tests.fixtures.premove.make_fixtures import STEPS, full_run_overrides, summarise
from tests.training.conftest import compose_config

PREMOVE = Path(__file__).resolve().parent / "fixtures" / "premove"
EXPECTED = json.loads((PREMOVE / "expected.json").read_text())
REL_TOL = 1e-4
ABS_TOL = 1e-3


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread):
    """Tiny models: one torch thread (see tests/conftest.py)."""


@pytest.fixture
def premove(tmp_path: Path) -> Path:
    dst = tmp_path / "premove"
    shutil.copytree(PREMOVE, dst, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return dst


def _load(path: Path, **kw):
    from songbloom.checkpoints.registry import load_checkpoint

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return load_checkpoint(path, **kw)


def _assert_matches(got: dict, want: dict):
    for name, w in want.items():
        g = got[name]
        if "shape" in w:
            assert g["shape"] == w["shape"], (name, g["shape"], w["shape"])
            assert math.isfinite(g["sum"]) and math.isfinite(g["abs_sum"]), (name, g)
        else:
            assert g["count"] == w["count"], (name, g, w)
        for key in ("sum", "abs_sum"):
            if key in w:
                assert math.isclose(g[key], w[key], rel_tol=REL_TOL, abs_tol=ABS_TOL), (name, key, g[key], w[key])


@pytest.mark.parametrize(
    ("name", "rel", "base"),
    [
        ("full_ckpt", "run_dir/checkpoints/last.ckpt", None),  # full weights; the demo VAE of the run
        ("adapter_only_ckpt", "adapter_only.ckpt", "base_release"),
        ("peft_adapter", "peft_adapter", "base_release"),
        ("base_release", "base_release", None),
    ],
)
def test_fixture_loads_with_recorded_outputs(premove: Path, name: str, rel: str, base: str | None):
    kw = {"base_path": premove / base} if base else {}
    bundle = _load(premove / rel, **kw)
    _assert_matches(summarise(bundle), EXPECTED[name])


def test_run_dir_resumes_from_its_step(premove: Path):
    from songbloom.training.callbacks import read_step_metrics
    from tests.training.conftest import run_flat

    root = premove / "root"
    run_dir = root / "outputs" / "runs" / "full"
    shutil.copytree(premove / "run_dir", run_dir)
    stored = EXPECTED["run_dir_global_step"]
    assert stored == STEPS
    # More steps than the stored run is a config change (trainer.max_steps); resume=auto picks last.ckpt.
    cfg = compose_config([f"paths.root_dir={root}", *full_run_overrides(stored + 2), "allow_config_change=true"])
    result = run_flat(cfg)
    assert result["resumed_from"] and result["resumed_from"].endswith("last.ckpt"), result
    assert result["steps"] == stored + 2, result
    assert sorted(read_step_metrics(run_dir / "metrics.jsonl")) == list(range(1, stored + 3))
