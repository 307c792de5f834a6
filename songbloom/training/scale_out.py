"""The Trainer arguments for multi-GPU / SLURM runs, assembled in one place for ``songbloom.training.run``.

``scale_out_trainer_kwargs(cfg, ckpt_dir)`` checks the SLURM task layout against ``trainer.devices`` and
``trainer.num_nodes`` (before Lightning, with a message naming the ``#SBATCH`` line), builds the strategy from
the ``strategy`` group (``_target_``), turns Lightning's own SLURM requeue off and adds the preemption callback.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from songbloom.config.run import RunConfig, as_run_config
from songbloom.training.strategies import build_strategy
from songbloom.utils import slurm


def scale_out_trainer_kwargs(cfg: RunConfig | Mapping[str, Any], ckpt_dir: str | Path) -> dict[str, Any]:
    """``{"strategy", "plugins", "callbacks"}`` to merge into ``lightning.Trainer(...)``'s arguments.

    ``strategy`` is left out when the config has no ``strategy`` group (the trainer group's string then wins).
    """
    from songbloom.training.preemption import from_config

    rc = as_run_config(cfg)
    tcfg = rc.trainer
    job = slurm.check_task_layout(tcfg.get("devices", 1), tcfg.get("num_nodes", 1), tcfg.get("accelerator"))
    out: dict[str, Any] = {"plugins": [], "callbacks": []}
    if rc.strategy:
        out["strategy"] = build_strategy(rc.strategy, lora_enabled=rc.lora.enabled)
    if job is not None and not job.interactive:
        from lightning.pytorch.plugins.environments import SLURMEnvironment

        # Exactly one requeue mechanism: ours (songbloom.training.preemption), never Lightning's.
        out["plugins"].append(SLURMEnvironment(auto_requeue=False))
    callback = from_config(rc.preemption, ckpt_dir)
    if callback is not None:
        out["callbacks"].append(callback)
    return out
