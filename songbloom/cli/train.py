"""Train or fine-tune SongBloom: ``songbloom-train [experiment=<name>] [overrides...]`` (also ``python train.py``).

Hydra owns this command line (``--help`` lists the config groups, ``--cfg job`` prints the composed config), so
there is no argparse ``build_parser`` here.

Where the config comes from: ``songbloom/conf``, a symlink to the repository's ``conf/`` (the one copy that is
edited). A checkout and an editable install read ``conf/`` through it, and a wheel ships the files as package data
under ``songbloom/conf``, so ``songbloom-train`` composes the same configs from any working directory. The current
directory is never searched; use Hydra's ``--config-dir DIR`` to add your own config groups/experiments, or
``--config-path DIR`` to replace the primary config directory.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from songbloom.utils.mps_env import set_mps_fallback_env_from_argv

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def _train(cfg: DictConfig) -> float | None:
    import os

    from songbloom.training import run

    try:
        result, _ = run(cfg)  # (metrics, objects)
    except (OSError, ValueError) as e:  # missing or unusable inputs: the message names them and the fix
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        raise SystemExit(f"error: {e}\n(set HYDRA_FULL_ERROR=1 for the traceback)") from e
    print(f"run dir     : {result['run_dir']}")
    print(f"checkpoint  : {result['checkpoint']}")
    print(f"metrics     : {result['run_dir']}/metrics.jsonl (summary.json)")
    if result.get("export_generator"):
        print(f"export      : {result['export_generator']}")
    if "song" in result:
        print(f"song        : {result['song'] or 'not generated (see the log)'}")
    if "ar_loss_ratio" in result:
        print(
            f"AR loss     : {result['ar_loss_first10']:.3f} (first 10% of steps) -> "
            f"{result['ar_loss_last10']:.3f} (last 10%), ratio {result['ar_loss_ratio']:.2f}"
        )
    return result.get("final_loss")  # what a Hydra sweeper optimises


def main(argv: list[str] | None = None) -> int:
    """Run ``_train`` under Hydra with ``argv`` (default: ``sys.argv[1:]``); Hydra exits 1 itself on an error."""
    argv = sys.argv[1:] if argv is None else list(argv)
    set_mps_fallback_env_from_argv(argv)  # before torch is imported: it reads the variable once
    saved = sys.argv
    sys.argv = [saved[0] if saved else "songbloom-train", *argv]
    try:
        _train()
    finally:
        sys.argv = saved
    return 0
