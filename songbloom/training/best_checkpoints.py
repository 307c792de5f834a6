"""Best-k checkpoints on a validation metric, in ``checkpoints/best/`` (see ``checkpointing.BEST_DIR``).

They are written after a validation that produced the monitored metric and ranks among the best ``save_top_k``;
a run without validation writes none. Files are ``step-NNNNNNN.ckpt`` written atomically (temp name, rename);
``best/index.json`` holds each file's step and score and is what pruning trusts. Auto-resume never reads this
folder: it continues the latest step file.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import lightning as L

from songbloom.training.checkpointing import best_checkpoint_dir, step_file_name
from songbloom.utils.atomic import atomic_write_json

logger = logging.getLogger(__name__)

INDEX = "index.json"
MODES = ("min", "max")


class BestCheckpoints(L.Callback):
    """Keep the ``save_top_k`` checkpoints with the best ``monitor`` (``mode`` min or max)."""

    def __init__(self, ckpt_dir: str | Path, monitor: str = "val/loss", mode: str = "min", save_top_k: int = 2):
        if mode not in MODES:
            raise ValueError(f"callbacks.best_checkpoint.mode={mode!r}: choose min or max")
        self.dir = best_checkpoint_dir(ckpt_dir)
        self.monitor = monitor
        self.mode = mode
        self.save_top_k = max(int(save_top_k), 1)

    def read_index(self) -> dict[str, dict[str, Any]]:
        path = self.dir / INDEX
        try:
            return dict(json.loads(path.read_text(encoding="utf-8"))["files"]) if path.is_file() else {}
        except (OSError, ValueError, KeyError, TypeError) as e:
            logger.warning("unreadable best-checkpoint index %s (%s): starting a new one", path, e)
            return {}

    def _ranked(self, files: dict[str, dict[str, Any]]) -> list[str]:
        """File names, best first."""
        sign = 1.0 if self.mode == "min" else -1.0
        return sorted(files, key=lambda n: (sign * float(files[n]["score"]), -int(files[n]["step"])))

    def _qualifies(self, files: dict[str, dict[str, Any]], score: float) -> bool:
        if len(files) < self.save_top_k:
            return True
        worst = files[self._ranked(files)[-1]]["score"]
        return score < worst if self.mode == "min" else score > worst

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or value is None:
            return  # no validation metric (no validation data, or another metric name): nothing to rank
        score, step = float(value), int(trainer.global_step)
        files = self.read_index()
        name = step_file_name(step)
        if name in files or not self._qualifies(files, score):
            return
        self.save(trainer, name, {"step": step, "score": score, "monitor": self.monitor}, files)

    def save(self, trainer: L.Trainer, name: str, entry: dict[str, Any], files: dict[str, dict[str, Any]]) -> None:
        final, tmp = self.dir / name, self.dir / f".{name}.tmp"
        if trainer.is_global_zero:
            self.dir.mkdir(parents=True, exist_ok=True)
        trainer.strategy.barrier("songbloom_best_checkpoint_dir")
        trainer.save_checkpoint(tmp, weights_only=False)  # every rank takes part (sharded strategies); rank 0 writes
        if trainer.is_global_zero:
            os.replace(tmp, final)
            files[name] = entry
            for old in self._ranked(files)[self.save_top_k :]:
                (self.dir / old).unlink(missing_ok=True)
                files.pop(old)
            atomic_write_json(self.dir / INDEX, {"format": 1, "monitor": self.monitor, "mode": self.mode,
                                                 "files": files})  # fmt: skip
            logger.info("best checkpoint %s (%s = %.6g)", final, self.monitor, entry["score"])
        trainer.strategy.barrier("songbloom_best_checkpoint")
