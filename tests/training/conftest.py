"""Fixtures for training tests: compose the real Hydra configs with CPU/tiny overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = REPO_ROOT / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))

# Every experiment shrunk to something a CPU runs in seconds: tiny model, in-memory data, no logger.
TINY_CPU = [
    "model=tiny",
    "trainer=cpu",
    "data=synthetic",
    "debug=ci",
    "data.num_songs=16",
    "data.val_songs=4",
    "data.batch_size=2",
    "data.min_frames=16",
    "data.max_frames=32",
    "demo.enabled=false",
]


def compose_config(overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.fixture
def compose(tmp_path: Path):
    """``compose(overrides)`` -> a DictConfig whose paths point into this test's tmp dir."""

    def _compose(overrides: list[str]):
        return compose_config([f"paths.root_dir={tmp_path}", *overrides])

    return _compose


def run_flat(cfg) -> dict:
    """``run(cfg)`` -> ``(metrics, objects)`` as one dict for tests: the metrics plus ``_lit_module`` (the
    LightningModule) and ``_songbloom_config``."""
    from songbloom.training import run

    metrics, objects = run(cfg)
    return {**metrics, "_lit_module": objects["model"], "_songbloom_config": objects["songbloom_config"]}
