"""Train or fine-tune SongBloom: ``python train.py [experiment=<name>] [overrides...]`` (see docs/training.md)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from songbloom.training import run

    result = run(cfg)
    return result.get("final_loss")


if __name__ == "__main__":
    main()
