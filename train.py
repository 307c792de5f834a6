"""Train or fine-tune SongBloom: ``python train.py [experiment=<name>] [overrides...]`` (see docs/training.md)."""

from __future__ import annotations

import sys

from songbloom.utils.mps_env import set_mps_fallback_env_from_argv

set_mps_fallback_env_from_argv(sys.argv[1:])  # before torch is imported: it reads the variable once

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from songbloom.training import run

    result, _ = run(cfg)  # (metrics, objects)
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
    return result.get("final_loss")


if __name__ == "__main__":
    main()
