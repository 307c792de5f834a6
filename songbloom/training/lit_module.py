"""The training wrapper around the plain :class:`SongBloomModel`: conditions, dropout, loss, optimizer, EMA.

Everything that only matters for training lives here; the model stays a plain ``nn.Module`` that the
sampler and the exporter use unchanged.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from typing import Any

import lightning as L
import torch

from songbloom.checkpoints.keys import (
    BASE_RECORD_KEY,
    EMA_KEY,
    EMA_SEEN_STEP_KEY,
    FROZEN_BASE_DROPPED_KEY,
    GLOBAL_STEP_KEY,
    LICENCES_KEY,
    RNG_KEY,
    RNG_RANKS_KEY,
    SKETCH_TABLES_KEY,
    TRAINING_CONFIG_KEY,
)
from songbloom.config.run import OptimConfig, TrainingConfig
from songbloom.models.conditioners import ConditionDropout
from songbloom.models.songbloom import SongBloomModel
from songbloom.training.batch import TrainingBatch, as_training_batch
from songbloom.training.ema import TrainableEMA
from songbloom.training.losses import songbloom_loss
from songbloom.training.optim import build_optimizer, lr_lambda, parameter_groups
from songbloom.utils.ranks import rank_and_world

logger = logging.getLogger(__name__)


# The module takes the typed run config's ``training`` block as it is (one definition of these knobs).
OptimSettings = OptimConfig
TrainSettings = TrainingConfig


class SongBloomLitModule(L.LightningModule):
    """Teacher-forced training of both stages: loss = CE(sketch) + ``flow_loss_weight`` x MSE(flow)."""

    def __init__(
        self,
        model: SongBloomModel,
        settings: TrainSettings,
        *,
        run_config: dict | None = None,
        trainable_report: dict[str, list[str]] | None = None,
        licences: list[dict] | None = None,
    ):
        super().__init__()
        self.model = model
        self.settings = settings
        self.run_config = run_config or {}
        self.trainable_report = trainable_report or {}
        self.licences = list(licences or [])  # what the run inherits (songbloom.licences); stored in checkpoints
        self.base_record: dict | None = None  # the base's resolved path and fingerprint (checkpoints.base_record)
        # How the run treats the sketch tables (songbloom.building.sketch_tables.SketchTablesLayout.to_dict()):
        # stored so a rebuild of the checkpoint gives the same layout without reading the codebook again.
        self.sketch_tables: dict | None = None
        mcfg = model.cfg
        self.cond_dropout = ConditionDropout(
            mcfg.cfg_dropout,
            mcfg.attribute_dropout,
            granularity=settings.dropout_granularity,
            seed=settings.dropout_seed,
        )
        self.ema = TrainableEMA(model, settings.ema_decay) if settings.ema else None
        self.strict_loading = settings.save_frozen_base
        self._pending_rng: dict | None = None
        self._ema_seen_step = 0
        self._grads_checked = False
        self._last_batch_end: float | None = None
        self._step_accum: dict[str, list[float]] = {}
        self.step_records: list[dict[str, float]] = []  # per optimizer step, read by the metrics-file callback
        self._val_stack: contextlib.ExitStack | None = None
        self.nonzero_grad_names: set[str] = set()

    # ------------------------------------------------------------------ forward pieces
    def build_conditions(self, batch: TrainingBatch, drop: dict[str, torch.Tensor] | None):
        lyric_ids: list[Any] = list(batch.lyric_ids)
        prompt_lengths = batch.prompt_lengths
        if drop is not None:
            if "lyrics" in drop:
                lyric_ids = [None if bool(d) else ids for ids, d in zip(lyric_ids, drop["lyrics"], strict=True)]
            if "prompt_wav" in drop and batch.prompt_latents is not None:
                full = (
                    prompt_lengths
                    if prompt_lengths is not None
                    else torch.full(
                        (batch.batch_size,), batch.prompt_latents.shape[-1], device=batch.prompt_latents.device
                    )
                )
                prompt_lengths = torch.where(drop["prompt_wav"].to(full.device), torch.zeros_like(full), full)
        padded = batch.prompt_latents.shape[-1] if batch.prompt_latents is not None else None
        return self.model.encode_conditions(lyric_ids, batch.prompt_latents, prompt_lengths, padded)

    def compute_losses(self, batch: TrainingBatch, *, train: bool):
        drop = self.cond_dropout(batch.batch_size) if (train and self.settings.condition_dropout) else None
        conditions = self.build_conditions(batch, drop)
        out = self.model(batch.sketch, batch.latents, batch.lengths, conditions)
        return songbloom_loss(out, ignore_id=self.model.special_id, flow_weight=self.settings.flow_loss_weight)

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if self._pending_rng is not None:
            self._restore_rng(self._pending_rng)
            self._pending_rng = None
        b = as_training_batch(batch, sample_latents=self.settings.sample_latents)
        terms = self.compute_losses(b, train=True)
        if not torch.isfinite(terms.loss):
            raise FloatingPointError(
                f"non-finite loss {terms.loss.item()} at step {self.global_step} (batch keys {b.keys}); "
                "lower optim.lr or check the data"
            )
        log = dict(on_step=True, on_epoch=False, batch_size=b.batch_size)
        self.log("train/loss", terms.loss, prog_bar=True, **log)
        self.log("train/ar_loss", terms.ar_loss, prog_bar=True, **log)
        self.log("train/flow_loss", terms.flow_loss, **log)
        self.log("train/sketch_acc", terms.sketch_accuracy, **log)
        for bucket, v in terms.flow_by_bucket.items():
            self.log(f"train/flow_loss_t{bucket}", v, **log)
        for k, v in (("loss", terms.loss), ("ar_loss", terms.ar_loss), ("flow_loss", terms.flow_loss)):
            self._step_accum.setdefault(k, []).append(float(v.detach()))
        self._step_accum.setdefault("audio_seconds", []).append(b.audio_seconds)
        self._step_accum.setdefault("tokens", []).append(float(b.lengths.sum()))
        return terms.loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        b = as_training_batch(batch)
        # Fixed noise/timesteps per batch: comparable curves, and the training RNG stream is untouched.
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(self.settings.validation_seed + batch_idx)
            terms = self.compute_losses(b, train=False)
        log = dict(on_step=False, on_epoch=True, batch_size=b.batch_size, sync_dist=True)
        self.log("val/loss", terms.loss, prog_bar=True, **log)
        self.log("val/ar_loss", terms.ar_loss, **log)
        self.log("val/flow_loss", terms.flow_loss, **log)
        self.log("val/sketch_acc", terms.sketch_accuracy, **log)

    # ------------------------------------------------------------------ optimizer
    def configure_optimizers(self):
        o = self.settings.optim
        groups = parameter_groups(self.model, o, low_lr=self.trainable_report.get("low_lr", ()))
        if not groups:
            raise ValueError("no trainable parameters: check lora/trainable settings")
        opt = build_optimizer(groups, o.lr, tuple(o.betas), o.eps)
        total = int(self.trainer.max_steps) if self.trainer is not None and self.trainer.max_steps > 0 else 0
        if o.schedule == "cosine" and total <= 0:
            raise ValueError("optim.schedule=cosine needs trainer.max_steps > 0 (the decay horizon)")
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(o.schedule, o.warmup_steps, total, o.min_lr_ratio))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        trainable = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        if not self._grads_checked:
            missing = [n for n, p in trainable if p.grad is None]
            if missing:
                raise RuntimeError(
                    f"{len(missing)} trainable parameters received no gradient at the first step (is something "
                    f"detached, or checkpointed re-entrantly?): {missing[:50]}"
                )
            self._grads_checked = True
        if self.settings.track_grad_coverage:
            self.nonzero_grad_names |= {n for n, p in trainable if p.grad is not None and bool(p.grad.ne(0).any())}
        norms = [p.grad.detach().float().norm() for _, p in trainable if p.grad is not None]
        grad_norm = torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.zeros(())
        self.log("train/grad_norm", grad_norm, on_step=True, on_epoch=False)
        self._step_accum["grad_norm"] = [float(grad_norm)]

    def finish_batch(self) -> dict[str, float] | None:
        """Per-optimizer-step bookkeeping (EMA update, step metrics); returns the step's record, or None after
        a micro-batch that ended no optimizer step. Called by :class:`StepRecorder`, the first callback, so it
        runs before any checkpoint of this step is written."""
        now = time.perf_counter()
        if self.global_step == self._ema_seen_step:
            return None  # a micro-batch of an accumulation: no optimizer step happened
        self._ema_seen_step = self.global_step
        if self.ema is not None:
            self.ema.update(self.model)
        acc = self._step_accum
        self._step_accum = {}
        record: dict[str, float] = {"step": int(self.global_step)}  # an integer in metrics.jsonl
        for k in ("loss", "ar_loss", "flow_loss"):
            if acc.get(k):
                record[k] = sum(acc[k]) / len(acc[k])
        if "grad_norm" in acc:
            record["grad_norm"] = acc["grad_norm"][0]
        record["lr"] = float(self.trainer.optimizers[0].param_groups[0]["lr"]) if self.trainer.optimizers else 0.0
        if self._last_batch_end is not None:
            dt = max(now - self._last_batch_end, 1e-9)
            record["audio_seconds_per_s"] = sum(acc.get("audio_seconds", [0.0])) / dt
            record["tokens_per_s"] = sum(acc.get("tokens", [0.0])) / dt
            self.log("train/audio_seconds_per_s", record["audio_seconds_per_s"], on_step=True, on_epoch=False)
            self.log("train/tokens_per_s", record["tokens_per_s"], on_step=True, on_epoch=False)
        self._last_batch_end = now
        self.log("train/lr", record["lr"], on_step=True, on_epoch=False)
        if torch.cuda.is_available() and self.device.type == "cuda":
            record["peak_mem_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30
            self.log("train/peak_mem_gb", record["peak_mem_gb"], on_step=True, on_epoch=False)
        self.step_records.append(record)
        return record

    def setup(self, stage: str) -> None:
        """Under DDP every rank gets its own dropout and noise streams (same seeds would repeat the same
        dropout pattern and flow noise on every rank). A resume restores each rank's saved streams instead."""
        if self.trainer is not None and self.trainer.world_size > 1:
            rank = self.trainer.global_rank
            mcfg = self.model.cfg
            self.cond_dropout = ConditionDropout(
                mcfg.cfg_dropout,
                mcfg.attribute_dropout,
                granularity=self.settings.dropout_granularity,
                seed=self.settings.dropout_seed + 1009 * rank,
            )
            torch.manual_seed(torch.initial_seed() + 7919 * rank)

    # ------------------------------------------------------------------ EMA for validation
    def on_fit_start(self) -> None:
        if self.ema is not None:
            self.ema.to(self.device)
        for name, names in self.trainable_report.items():
            logger.info("trainable %s: %d tensors", name, len(names))

    def on_validation_epoch_start(self) -> None:
        if self.ema is not None and self.ema.num_updates > 0:
            self._val_stack = contextlib.ExitStack()
            self._val_stack.enter_context(self.ema.swapped_in(self.model))

    def on_validation_epoch_end(self) -> None:
        if self._val_stack is not None:
            self._val_stack.close()
            self._val_stack = None

    # ------------------------------------------------------------------ checkpoint content
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[TRAINING_CONFIG_KEY] = self.run_config
        checkpoint[LICENCES_KEY] = list(self.licences)
        if self.base_record is not None:
            checkpoint[BASE_RECORD_KEY] = self.base_record
        if self.sketch_tables is not None:
            checkpoint[SKETCH_TABLES_KEY] = dict(self.sketch_tables)
        state = self._capture_rng()
        checkpoint[RNG_KEY] = state  # this rank's (rank 0's in the file), as older checkpoints hold
        checkpoint[RNG_RANKS_KEY] = gather_rank_states(state)  # every rank's, by global rank
        checkpoint[EMA_SEEN_STEP_KEY] = self._ema_seen_step
        if self.ema is not None:
            checkpoint[EMA_KEY] = self.ema.state_dict()
        if not self.settings.save_frozen_base:
            keep = {f"model.{n}" for n, p in self.model.named_parameters() if p.requires_grad}
            frozen = {f"model.{n}" for n, p in self.model.named_parameters() if not p.requires_grad}
            checkpoint["state_dict"] = {
                k: v for k, v in checkpoint["state_dict"].items() if k in keep or k not in frozen
            }
            checkpoint[FROZEN_BASE_DROPPED_KEY] = len(frozen)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._check_sketch_tables(checkpoint.get(SKETCH_TABLES_KEY))
        trainable = {f"model.{n}" for n, p in self.model.named_parameters() if p.requires_grad}
        missing = sorted(trainable - set(checkpoint["state_dict"]))
        if missing:
            raise KeyError(
                f"checkpoint lacks {len(missing)} trainable tensors (different LoRA/trainable setup?): {missing[:20]}"
            )
        if self.ema is not None and EMA_KEY in checkpoint:
            self.ema.load_state_dict(checkpoint[EMA_KEY])
        self._ema_seen_step = int(checkpoint.get(EMA_SEEN_STEP_KEY, checkpoint.get(GLOBAL_STEP_KEY, 0)))
        self._grads_checked = True  # checked on the run's first step already
        self._pending_rng = rng_state_for_rank(checkpoint, *self._rank_and_world())

    def _check_sketch_tables(self, recorded: Any) -> None:
        """A resumed run must treat the sketch tables as it did when it wrote the checkpoint."""
        if not isinstance(recorded, dict) or self.sketch_tables is None:
            return
        if recorded.get("mode") != self.sketch_tables.get("mode"):
            raise ValueError(
                f"the checkpoint's run treated the sketch tables as {recorded.get('mode')!r} "
                f"({recorded.get('reason')}), this run resolves {self.sketch_tables.get('mode')!r} "
                f"({self.sketch_tables.get('reason')}): did sketch.codebook_path, the codebook file, the init weights "
                "or trainable.recovered_tables change? Restore them, or start a new run"
            )

    def _rank_and_world(self) -> tuple[int, int]:
        if self._trainer is not None:
            return self.trainer.global_rank, self.trainer.world_size
        return rank_and_world()

    def _capture_rng(self) -> dict[str, Any]:
        state = {
            "torch": torch.get_rng_state(),
            "python": _python_state_to_list(random.getstate()),
            "cond_dropout": self.cond_dropout.state_dict(),
        }
        if torch.cuda.is_available() and self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def _restore_rng(self, state: dict[str, Any]) -> None:
        if "reseed" in state:  # no saved state for this rank (the world size changed): a derived seed
            seed = int(state["reseed"])
            torch.manual_seed(seed)
            random.seed(seed)
            for gen in (self.cond_dropout.cfg_gen, self.cond_dropout.att_gen):
                gen.manual_seed(seed + self.settings.dropout_seed)
            logger.info("reseeded RNGs with %d at step %d", seed, self.global_step)
            return
        torch.set_rng_state(state["torch"])
        random.setstate(_python_state_from_list(state["python"]))
        self.cond_dropout.load_state_dict(state["cond_dropout"])
        if "cuda" in state and torch.cuda.is_available() and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"], self.device)
        logger.info("restored RNG states at step %d", self.global_step)


def gather_rank_states(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Every rank's ``state``, indexed by global rank (a collective: every rank calls it at each save, as
    Lightning runs the checkpoint hooks on all ranks); ``[state]`` without a process group."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [state]
    states: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(states, state)
    return states


def rng_state_for_rank(checkpoint: dict[str, Any], rank: int, world_size: int) -> dict[str, Any] | None:
    """This rank's saved RNG state; after a world-size change (or from a checkpoint with rank 0's state only,
    resumed on several ranks) a warning and ``{"reseed": seed}``, a seed derived from step, rank and the saved
    state, so that reruns of the same resume agree."""
    ranks = checkpoint.get(RNG_RANKS_KEY)
    if ranks is None:
        single = checkpoint.get(RNG_KEY)
        if single is None or world_size == 1:
            return single
        ranks = [single]
    if len(ranks) == world_size:
        return ranks[rank]
    step = int(checkpoint.get("global_step", 0))
    base = int(torch.as_tensor(ranks[0]["torch"]).to(torch.int64).sum()) if ranks and "torch" in ranks[0] else 0
    seed = (base * 1_000_003 + step * 7919 + rank * 104_729) % (2**63 - 1)
    logger.warning(
        "checkpoint holds RNG states of %d rank(s), this run has %d: rank %d reseeds deterministically "
        "(seed %d); the random streams after this resume differ from an uninterrupted run's",
        len(ranks),
        world_size,
        rank,
        seed,
    )
    return {"reseed": seed}


def _python_state_to_list(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), None if gauss is None or math.isnan(gauss) else gauss]


def _python_state_from_list(state: list) -> tuple:
    return (state[0], tuple(state[1]), state[2])
