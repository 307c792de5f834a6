"""A Lightning callback that runs the held-out metrics every N optimizer steps, time-boxed.

It answers "when do I stop?" during training: the teacher-forced metrics use fixed timesteps and seeded
noise, so their curves move only when the model does. Optional audio metrics run on songs produced by a
user-supplied ``generate_audio`` hook (the sampler is too slow to be the default).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

from songbloom.eval.teacher_forced import DEFAULT_TIMESTEPS, TeacherForcedMetrics

logger = logging.getLogger(__name__)

BatchSource = Iterable[Any] | Callable[[], Iterable[Any]] | None
AudioHook = Callable[[torch.nn.Module], dict[str, float]]


class EvaluationCallback(L.Callback):
    """Teacher-forced held-out metrics every ``every_n_steps`` optimizer steps (and at the end of fit).

    Args:
        batches: held-out batches (datamodule layout or ``TrainingBatch``), a callable returning them, or
            ``None`` to use the trainer's validation dataloader.
        max_batches: evaluate at most this many batches per run (``None`` = all).
        time_budget_s: stop after this many seconds; the logged ``eval/batches`` and ``eval/truncated``
            say how much was covered, so a cut-short evaluation is never mistaken for a full one.
        distributed: ``False`` = rank 0 evaluates every batch alone (others wait at no collective);
            ``True`` = each rank takes every ``world_size``-th batch and the sums are all-reduced.
        use_ema: evaluate the EMA weights when the module has an ``ema`` with ``swapped_in`` (as the
            training module does).
        audio_hook: optional ``model -> {name: value}`` run after the teacher-forced pass (rank 0 only).
        output_path: append one JSON line per evaluation (``{"step": ..., metrics...}``).
    """

    def __init__(self, batches: BatchSource = None, *, every_n_steps: int = 200,
                 timesteps: Sequence[float] = DEFAULT_TIMESTEPS, seed: int = 0, max_batches: int | None = None,
                 time_budget_s: float | None = None, distributed: bool = False, use_ema: bool = True,
                 run_at_end: bool = True, audio_hook: AudioHook | None = None,
                 output_path: str | Path | None = None, prefix: str = "eval/"):
        if every_n_steps <= 0:
            raise ValueError(f"every_n_steps must be positive, got {every_n_steps}")
        self.batches = batches
        self.every_n_steps = every_n_steps
        self.timesteps = tuple(timesteps)
        self.seed = seed
        self.max_batches = max_batches
        self.time_budget_s = time_budget_s
        self.distributed = distributed
        self.use_ema = use_ema
        self.run_at_end = run_at_end
        self.audio_hook = audio_hook
        self.output_path = Path(output_path) if output_path else None
        self.prefix = prefix
        self.history: list[dict[str, float]] = []
        self._last_step = -1

    # ------------------------------------------------------------------ Lightning hooks
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = trainer.global_step
        if step > 0 and step % self.every_n_steps == 0 and step != self._last_step:
            self.evaluate(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.run_at_end and trainer.global_step != self._last_step:
            self.evaluate(trainer, pl_module)

    # ------------------------------------------------------------------ the evaluation
    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float] | None:
        """Run the metrics now; returns them on rank 0 (``None`` elsewhere)."""
        self._last_step = step = trainer.global_step
        rank, world = trainer.global_rank, trainer.world_size
        if not self.distributed and rank != 0:
            return None
        model = getattr(pl_module, "model", pl_module)
        metric = TeacherForcedMetrics(self.timesteps, seed=self.seed)
        start = time.monotonic()
        evaluated, truncated = 0, False
        # The trainer's precision context: a bf16-held frozen base needs autocast, as in training.
        plugin = getattr(trainer, "precision_plugin", None)
        precision_ctx = plugin.forward_context() if plugin is not None else contextlib.nullcontext()
        with self._weights(pl_module, model), precision_ctx:
            for i, batch in enumerate(self._iter_batches(trainer)):
                if self.max_batches is not None and i >= self.max_batches:
                    break
                if self.time_budget_s is not None and time.monotonic() - start > self.time_budget_s:
                    truncated = True
                    break
                if self.distributed and i % world != rank:
                    continue
                metric.update(model, batch, batch_index=i)
                evaluated += 1
            if self.distributed and world > 1:
                state = trainer.strategy.reduce(metric.state().to(pl_module.device), reduce_op="sum")
                metric.load_state(state)
                counts = torch.tensor([evaluated, int(truncated)], device=pl_module.device, dtype=torch.float64)
                counts = trainer.strategy.reduce(counts, reduce_op="sum")
                evaluated, truncated = int(counts[0]), bool(counts[1] > 0)
            if rank != 0:
                return None
            if evaluated == 0:
                logger.warning("step %d: no held-out batch was evaluated (empty source or zero time budget)", step)
                return None
            metrics = metric.compute()
            if self.audio_hook is not None:
                metrics.update(self.audio_hook(model))
        metrics.update({"batches": float(evaluated), "truncated": float(truncated),
                        "seconds": time.monotonic() - start})
        logged = {f"{self.prefix}{k}": float(v) for k, v in metrics.items()}
        for lg in trainer.loggers:
            lg.log_metrics(logged, step=step)
        self.history.append({"step": step, **logged})
        if self.output_path is not None:
            self.output_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.output_path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"step": step, **logged}) + "\n")
        logger.info("step %d: %s", step, ", ".join(f"{k}={v:.4g}" for k, v in logged.items()))
        return logged

    def _iter_batches(self, trainer: L.Trainer) -> Iterable[Any]:
        source = self.batches
        if callable(source):
            return source()
        if source is not None:
            return source
        dm = getattr(trainer, "datamodule", None)
        if dm is not None and hasattr(dm, "val_dataloader"):
            return dm.val_dataloader()
        loaders = trainer.val_dataloaders
        if loaders is None:
            raise ValueError("EvaluationCallback has no batches: pass held-out batches or give the trainer a "
                             "datamodule with val_dataloader()")
        return loaders

    def _weights(self, pl_module: L.LightningModule, model: torch.nn.Module):
        ema = getattr(pl_module, "ema", None)
        if self.use_ema and ema is not None and hasattr(ema, "swapped_in") and getattr(ema, "num_updates", 1) > 0:
            return ema.swapped_in(model)
        return contextlib.nullcontext()


def build_eval_callback(cfg: dict[str, Any] | None, *, run_dir: str | Path | None = None,
                        batches: BatchSource = None) -> EvaluationCallback | None:
    """The callback from a ``callbacks.eval`` config block (``None`` or ``enabled: false`` -> no callback).

    Keys: ``every_n_steps``, ``timesteps``, ``seed``, ``max_batches``, ``time_budget_s``, ``distributed``,
    ``use_ema``, ``run_at_end``. Results also go to ``<run_dir>/eval_metrics.jsonl`` when ``run_dir`` is given.
    """
    if not cfg or not cfg.get("enabled", True):
        return None
    known = {"enabled", "every_n_steps", "timesteps", "seed", "max_batches", "time_budget_s", "distributed",
             "use_ema", "run_at_end"}
    unknown = set(cfg) - known
    if unknown:
        raise ValueError(f"callbacks.eval: unknown keys {sorted(unknown)}; known keys: {sorted(known)}")
    kwargs = {k: v for k, v in cfg.items() if k != "enabled"}
    if "timesteps" in kwargs:
        kwargs["timesteps"] = tuple(float(t) for t in kwargs["timesteps"])
    out = Path(run_dir) / "eval_metrics.jsonl" if run_dir is not None else None
    return EvaluationCallback(batches, output_path=out, **kwargs)
