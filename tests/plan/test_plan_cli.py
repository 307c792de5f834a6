"""``python -m songbloom.plan`` composes the config of ``train.py`` with the same overrides and prints the plan."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TINY = ["model=tiny", "data=synthetic", "data.max_frames=32", "demo.enabled=false"]


def _plan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "songbloom.plan", *args], cwd=REPO, capture_output=True, text=True, timeout=600
    )


def test_table_names_every_component_and_the_total():
    r = _plan(*TINY, "trainer=gpu", "training.ema=true", "lora=all")
    assert r.returncode == 0, r.stderr
    for row in ("parameters", "gradients", "optimizer states", "EMA", "activations", "CUDA context",
                "allocator reserve", "total per GPU", "demo generation"):  # fmt: skip
        assert row in r.stdout, (row, r.stdout)
    assert "24 GB: fits" in r.stdout


def plan_json(*args: str) -> dict:
    r = _plan(*args, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_json_follows_the_overrides():
    plain = plan_json(*TINY, "trainer=gpu")
    ckpt = plan_json(*TINY, "trainer=gpu", "training.gradient_checkpointing=full")
    assert plain["total_bytes"] > 0 and plain["params_total"] > 0
    assert "checkpointing none" in plain["settings"] and "checkpointing full" in ckpt["settings"]
    rows = {p: {r["name"]: r["bytes"] for r in d["rows"]} for p, d in (("plain", plain), ("ckpt", ckpt))}
    assert rows["ckpt"]["activations"] < rows["plain"]["activations"]
    assert rows["plain"]["CUDA context"] > 0
