"""Every training run logs the memory plan in one line at its start, cached per config in the run dir."""

from __future__ import annotations

import json

from songbloom.plan.cache import CACHE_NAME, log_memory_plan
from tests.training.conftest import TINY_CPU, run_flat


def test_a_run_logs_the_plan_once_and_caches_it(compose, caplog):
    cfg = compose([*TINY_CPU, "trainer.max_steps=1", "callbacks.demo_audio.enabled=false"])
    out = run_flat(cfg)
    from pathlib import Path

    run_dir = Path(out["run_dir"])
    log = (run_dir / "train.log").read_text()
    lines = [line for line in log.splitlines() if "memory plan:" in line]
    assert len(lines) == 1 and "peak per GPU" in lines[0], log
    cached = json.loads((run_dir / CACHE_NAME).read_text())
    assert cached["seconds"] <= 10.0, cached["seconds"]
    lit = out["_lit_module"]
    from songbloom.config.run import parse_run_config

    rc = parse_run_config(lit.run_config)
    with caplog.at_level("INFO"):
        line = log_memory_plan(rc, lit.run_config, run_dir)  # the same config again: read back
    assert line == cached["line"]
    assert "[cached]" in caplog.text
