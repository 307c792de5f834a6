"""Small callbacks: per-step bookkeeping and the metrics file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L


class StepRecorder(L.Callback):
    """Runs the module's per-optimizer-step bookkeeping first, then appends the step to ``metrics.jsonl``.

    It must be the first callback: EMA and step records are then final before any checkpoint of the step.
    """

    def __init__(self, metrics_path: str | Path | None):
        self.metrics_path = Path(metrics_path) if metrics_path else None

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        record = pl_module.finish_batch()  # type: ignore[operator]
        if record is None or self.metrics_path is None or not trainer.is_global_zero:
            return
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()


def read_step_metrics(path: str | Path) -> dict[int, dict[str, float]]:
    """Step -> record from ``metrics.jsonl``; a step logged twice (by a killed run, then its resume) keeps the
    later record."""
    out: dict[int, dict[str, float]] = {}
    p = Path(path)
    if not p.is_file():
        return out
    for line in p.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            out[int(rec["step"])] = rec
    return out
