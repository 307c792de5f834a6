"""Every training run logs the memory plan in one line at its start, cached per config in the run dir."""

from __future__ import annotations

import json
from pathlib import Path

from tests.training.conftest import TINY_CPU

CACHE_NAME = "memory_plan.json"


def test_a_run_logs_the_plan_once_and_caches_it(compose, caplog):
    from songbloom.training import run

    cfg = compose([*TINY_CPU, "trainer.max_steps=1", "callbacks.demo_audio.enabled=false"])
    result = run(cfg)
    metrics = result[0] if isinstance(result, tuple) else result  # (metrics, objects)
    run_dir = Path(metrics["run_dir"])
    log = (run_dir / "train.log").read_text()
    lines = [line for line in log.splitlines() if "memory plan:" in line]
    assert len(lines) == 1 and "peak per GPU" in lines[0], log
    cached = json.loads((run_dir / CACHE_NAME).read_text())
    assert cached["seconds"] <= 10.0, cached["seconds"]

    from songbloom.config.run import parse_run_config
    from songbloom.plan.cache import log_memory_plan

    objects = result[1]
    with caplog.at_level("INFO"):
        line = log_memory_plan(parse_run_config(objects["cfg"]), objects["cfg"], run_dir)  # same config: read back
    assert line == cached["line"]
    assert "[cached]" in caplog.text
