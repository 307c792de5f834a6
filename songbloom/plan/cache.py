"""The one line every training run logs at its start: the memory plan, cached per config in the run dir.

The cache (``<run_dir>/memory_plan.json``) is keyed by a hash of the composed config, so a resume or requeue of
the same run reads it back instead of probing again; a changed config is planned afresh. Planning never stops a
run: a failure is logged as a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from songbloom.config.run import RunConfig

logger = logging.getLogger(__name__)

CACHE_NAME = "memory_plan.json"


def config_hash(c: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(c, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cached_plan(rc: RunConfig, c: Mapping[str, Any], cache_dir: Path) -> dict[str, Any]:
    """The plan of this config as a dict (``line``, ``plan``, ``seconds``): from the cache, or estimated now."""
    import torch

    from songbloom.plan.estimate import estimate
    from songbloom.plan.report import one_line

    key = config_hash(c)
    path = Path(cache_dir) / CACHE_NAME
    if path.is_file():
        try:
            data = json.loads(path.read_text())
            if data.get("config_hash") == key:
                return {**data, "cached": True}
        except (OSError, ValueError):
            pass
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        plan = estimate(rc)
    data = {"config_hash": key, "line": one_line(plan), "plan": plan.to_dict(), "seconds": time.perf_counter() - start}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)
    return {**data, "cached": False}


def log_memory_plan(rc: RunConfig, c: Mapping[str, Any], run_dir: Path) -> str | None:
    """Log the plan's one line (rank 0 only); returns it, or None on other ranks and on failure."""
    from songbloom.utils.ranks import rank_and_world

    if rank_and_world()[0] != 0:
        return None
    try:
        data = cached_plan(rc, c, run_dir)
    except Exception as e:  # an estimate must never stop a run
        logger.warning("memory plan: not estimated (%s: %s)", type(e).__name__, e)
        return None
    how = "cached" if data["cached"] else f"estimated in {data['seconds']:.1f} s"
    logger.info("%s [%s]", data["line"], how)
    return data["line"]
