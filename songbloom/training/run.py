"""``run(cfg)``: everything ``train.py`` does, from a composed Hydra config to a trained, exported run dir.

Steps: parse the typed config once (:func:`parse_config`), then :func:`build` (model, data, logger, callbacks,
trainer), :func:`fit` and :func:`finish` (summary, export, demo song), inside :func:`run_scope` (run dir, log
file, threads). ``_target_`` blocks are instantiated here from the composed config only; the configs stored
in run dirs and checkpoints are compared and recorded, never instantiated.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.loggers import WandbLogger

from songbloom.building.devices import prepare_training_accelerator
from songbloom.checkpoints.base_record import training_base_record
from songbloom.checkpoints.init_weights import build_training_model
from songbloom.config import SongBloomConfig
from songbloom.config.run import DemoConfig, RunConfig, as_run_config, parse_run_config
from songbloom.plan.cache import log_memory_plan
from songbloom.training.callbacks import StepRecorder, read_step_metrics
from songbloom.training.checkpointing import checked_resume_file, find_resume_checkpoint
from songbloom.training.data import build_datamodule, data_kind
from songbloom.training.data_checks import check_run_inputs
from songbloom.training.epochs import apply_target_epochs
from songbloom.training.instantiate import block_problems, instantiate, instantiate_all
from songbloom.training.lit_module import SongBloomLitModule, TrainSettings
from songbloom.training.logging_callbacks import FinishWandbRun
from songbloom.training.rerun import COMPLETE_KEY, completed_summary
from songbloom.training.run_dir import (
    DeferredRunLog,
    atomic_write_text,
    check_run_dir,
    claim_run_dir,
    command_line_overrides,
    default_run_name,
)
from songbloom.training.run_licences import training_licences
from songbloom.training.sketch_tables import run_recovered_codebook
from songbloom.training.validation_schedule import optimizer_step_validation
from songbloom.utils.logging import route_library_logs_to_root

logger = logging.getLogger(__name__)

FP16_REFUSAL = (
    "fp16 precision is refused: the release's inference code flags fp16 as buggy for SongBloom (activations "
    "overflow the fp16 range); use bf16-mixed on GPUs that support it, or 32-true"
)


def check_precision(precision: str | int, accelerator: str) -> str:
    p = str(precision)
    if p in ("16", "16-mixed", "16-true", "fp16", "half"):
        raise ValueError(FP16_REFUSAL)
    if accelerator == "cpu" and p.startswith("bf16-true"):
        raise ValueError("bf16-true on CPU is not supported for training here; use 32-true")
    return p


def to_container(cfg: Any) -> dict[str, Any]:
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        if "hydra" in cfg:  # the hydra node holds launcher-time interpolations; resolve only the run's keys
            cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
        out = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    else:
        out = dict(cfg)
    out.pop("hydra", None)
    return out  # type: ignore[return-value]


def _file_logging(run_dir: Path) -> logging.Handler:
    handler = DeferredRunLog(run_dir / "train.log")  # the file starts when the run dir is claimed
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    if logging.getLogger().level > logging.INFO:
        logging.getLogger().setLevel(logging.INFO)
    return handler


def train_settings(c: RunConfig | Mapping[str, Any]) -> TrainSettings:
    """The LightningModule's settings: the run config's ``training`` block."""
    return as_run_config(c).training


def summarize(metrics_path: Path) -> dict[str, float]:
    recs = read_step_metrics(metrics_path)
    steps = sorted(recs)
    out: dict[str, float] = {"steps": float(len(steps))}
    if not steps:
        return out
    k = max(1, len(steps) // 10)
    first = [recs[s]["ar_loss"] for s in steps[:k]]
    last = [recs[s]["ar_loss"] for s in steps[-k:]]
    out.update(
        ar_loss_first10=sum(first) / k,
        ar_loss_last10=sum(last) / k,
        ar_loss_ratio=(sum(last) / k) / max(sum(first) / k, 1e-12),
        final_loss=recs[steps[-1]]["loss"],
        final_ar_loss=recs[steps[-1]]["ar_loss"],
        final_flow_loss=recs[steps[-1]]["flow_loss"],
    )
    return out


def _demo_song(dm, sb_cfg: SongBloomConfig, run_dir: Path, demo: DemoConfig) -> Path:
    """Generate a song with the lyrics of the first validation item (the sampler decides the rest)."""
    from songbloom.training.batch import as_training_batch
    from songbloom.training.demo import generate_demo_song

    lyric_ids: list[int] = [0]  # the null lyric, if the data has no item to borrow lyrics from
    for make_loader in (dm.val_dataloader, dm.train_dataloader):
        batch = next(iter(make_loader()), None)
        if batch is not None:
            lyric_ids = as_training_batch(batch).lyric_ids[0].tolist()
            break
    return generate_demo_song(
        run_dir / "export",
        sb_cfg,
        run_dir / "demo_song.wav",
        lyric_ids,
        seconds=float(demo.generate_seconds),
        seed=int(demo.seed),
    )


def _run_licences(rc: RunConfig, data_cfg: Mapping[str, Any], init_source: str) -> list[dict[str, Any]]:
    """What the run inherits (data, MuQ weights behind the codebook, initial weights): see songbloom.licences."""
    return training_licences(
        data_kind=data_kind(data_cfg),
        shards_dir=data_cfg.get("shards_dir"),
        init_source=init_source,
        init_description=str(rc.init.release_name or rc.init.export_path or ""),
        codebook_path=rc.sketch.codebook_path,
    )


def parse_config(c: dict[str, Any]) -> RunConfig:
    """The typed run config; one error lists every problem, ``_target_`` blocks checked against their targets."""
    return parse_run_config(c, check_target=block_problems)


@contextmanager
def run_scope(rc: RunConfig, c: dict[str, Any]) -> Iterator[Path]:
    """The run dir (checked here; created or reused by :func:`claim_run_dir` once :func:`build` succeeded), its
    ``train.log`` and the run's CPU threads, restored on the way out."""
    tcfg = rc.trainer
    check_precision(tcfg.get("precision", "32-true"), str(tcfg.get("accelerator", "cpu")))
    prepare_training_accelerator(dict(tcfg))  # MPS: float32 and the per-op CPU fallback, with notices
    run_name = rc.run_name or default_run_name(c)
    run_dir = check_run_dir(rc.paths.runs_dir, run_name, c, allow_config_change=rc.allow_config_change)
    handler = _file_logging(run_dir)
    threads_before = torch.get_num_threads()
    if rc.num_threads:
        torch.set_num_threads(int(rc.num_threads))
    try:
        yield run_dir
    finally:
        torch.set_num_threads(threads_before)
        logging.getLogger().removeHandler(handler)
        handler.close()


def _data_config(rc: RunConfig, sb_cfg: SongBloomConfig) -> Mapping[str, Any]:
    if not (rc.demo.enabled and rc.demo.prepare_data):
        return rc.data
    from songbloom.training.demo import prepare_demo_data_once

    # Its own RNG stream: training must not depend on whether the demo data was already built.
    with torch.random.fork_rng(devices=[]):
        return prepare_demo_data_once(rc, sb_cfg)


def _resume_path(rc: RunConfig, run_dir: Path) -> Path | None:
    if rc.ckpt_path:  # ckpt_path=<file> (the lightning-hydra-template name) is resume=<file>
        return checked_resume_file(str(rc.ckpt_path))
    if rc.resume == "auto":
        return find_resume_checkpoint(run_dir / "checkpoints", hpc_dir=run_dir)
    if rc.resume in (None, "never", False):
        return None
    return checked_resume_file(str(rc.resume))


def build(rc: RunConfig, c: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """Model, data, logger, callbacks and trainer of the run: the objects ``run`` returns beside the metrics."""
    import lightning as L

    from songbloom.training.scale_out import scale_out_trainer_kwargs

    logger.info("run dir %s", run_dir)
    ckpt_path = _resume_path(rc, run_dir)  # refuses damaged or unloadable checkpoints before any work
    L.seed_everything(rc.seed, workers=True, verbose=False)
    logger.info("%s", rc.lora.describe())
    built = build_training_model(rc, recovered=run_recovered_codebook(rc))
    model, sb_cfg, report, source = built.model, built.config, built.report, built.source
    data_cfg = _data_config(rc, sb_cfg)
    input_checks = check_run_inputs(rc, data_cfg)  # codebook, manifest and shards belong together (data_checks)
    dm = build_datamodule(data_cfg, sb_cfg, seed=rc.seed)
    lit = SongBloomLitModule(
        model, rc.training, run_config=c, trainable_report=report, licences=_run_licences(rc, data_cfg, source)
    )
    lit.base_record = training_base_record(rc.init)  # adapter-only checkpoints then load from any directory
    lit.sketch_tables = built.sketch_tables.to_dict() if built.sketch_tables is not None else None
    ckpt_dir = run_dir / "checkpoints"
    exp_logger = instantiate(rc.logger, run_dir=run_dir, run_config=c)
    context = dict(
        run_dir=run_dir,
        ckpt_dir=ckpt_dir,
        songbloom_config=sb_cfg,
        run_config=c,
        trainer_config=dict(rc.trainer),
        logger_enabled=exp_logger is not None,
        lora_enabled=rc.lora.enabled,
    )
    callbacks = [StepRecorder(run_dir / "metrics.jsonl"), *input_checks, *optimizer_step_validation(rc.trainer)]
    callbacks += instantiate_all(rc.callbacks, **context)
    if isinstance(exp_logger, WandbLogger):
        callbacks.append(FinishWandbRun())
    # SLURM layout check, strategy, our preemption handling (Lightning's own requeue is switched off).
    scale_out = scale_out_trainer_kwargs(rc, ckpt_dir)
    trainer_kwargs = dict(rc.trainer)
    if trainer_kwargs.get("max_steps") is None:
        trainer_kwargs["max_steps"] = -1  # derived from training.target_epochs below
    if "strategy" in scale_out:
        trainer_kwargs["strategy"] = scale_out["strategy"]
    trainer = L.Trainer(
        **trainer_kwargs,
        plugins=scale_out["plugins"],
        callbacks=[*callbacks, *scale_out["callbacks"]],
        logger=exp_logger if exp_logger is not None else False,
        default_root_dir=str(run_dir),
        enable_checkpointing=False,
    )
    apply_target_epochs(trainer, dm, rc.training)  # max_steps from target_epochs; the memorisation warning
    if ckpt_path is not None:
        logger.info("resuming from %s", ckpt_path)
    return {
        "cfg": c,
        "run_config": rc,
        "run_dir": run_dir,
        "songbloom_config": sb_cfg,
        "trainable_report": report,
        "sketch_tables": built.sketch_tables,
        "init_source": source,
        "datamodule": dm,
        "model": lit,
        "logger": exp_logger,
        "callbacks": trainer.callbacks,
        "trainer": trainer,
        "ckpt_path": ckpt_path,
    }


def fit(objects: dict[str, Any]) -> None:
    ckpt_path = objects["ckpt_path"]
    objects["trainer"].fit(
        objects["model"],
        datamodule=objects["datamodule"],
        ckpt_path=str(ckpt_path) if ckpt_path else None,
        weights_only=True,
    )


def _export(o: dict[str, Any]) -> dict[str, str]:
    from songbloom.training.export import export_run

    extra = {
        "trainable": o["trainable_report"],
        "init_source": o["init_source"],
        "sketch_codebook": o["run_config"].sketch.codebook_path,
    }
    if o.get("sketch_tables") is not None:
        extra["sketch_tables"] = o["sketch_tables"].to_dict()
    paths = export_run(o["model"], o["songbloom_config"], o["run_dir"], o["run_config"], extra=extra)
    return {f"export_{k}": str(v) for k, v in paths.items()}


def finish(o: dict[str, Any]) -> dict[str, Any]:
    """Summary metrics, the run-end export and the demo song (rank 0); ``summary.json`` in the run dir."""
    rc: RunConfig = o["run_config"]
    run_dir: Path = o["run_dir"]
    metrics: dict[str, Any] = summarize(run_dir / "metrics.jsonl")
    metrics["run_dir"] = str(run_dir)
    metrics["checkpoint"] = str(run_dir / "checkpoints" / "last.ckpt")
    metrics["resumed_from"] = str(o["ckpt_path"]) if o["ckpt_path"] else None
    if not o["trainer"].is_global_zero:
        return metrics
    if rc.export.enabled:
        metrics.update(_export(o))
    if rc.demo.enabled and rc.demo.generate and "export_generator" in metrics:
        song = _demo_song(o["datamodule"], o["songbloom_config"], run_dir, rc.demo)
        metrics["song"] = str(song)
    metrics[COMPLETE_KEY] = True  # a re-run of the same command has nothing left to do (songbloom.training.rerun)
    atomic_write_text(run_dir / "summary.json", json.dumps(metrics, indent=1))
    return metrics


def run(cfg: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train (or resume) the run described by ``cfg`` (composed from ``conf/`` and the command line).

    Returns ``(metrics, objects)``: summary metrics and paths (also in ``<run_dir>/summary.json``), and the
    run's objects (``model`` = the LightningModule, ``trainer``, ``datamodule``, ``songbloom_config``,
    ``run_config`` = the typed config, ``cfg`` = the resolved dict, ...).
    """
    route_library_logs_to_root()  # Lightning's messages once on the console, and into train.log
    overrides = command_line_overrides(cfg)
    c = to_container(cfg)
    rc = parse_config(c)
    with run_scope(rc, c) as run_dir:
        done = completed_summary(rc, c, run_dir)
        if done is not None:  # the same command again: no model, no W&B run, no export
            return done, {"cfg": c, "run_config": rc, "run_dir": run_dir, "model": None, "songbloom_config": None}
        objects = build(rc, c, run_dir)
        # inputs passed: write config.json, overrides.txt, versions.json
        claim_run_dir(run_dir, c, allow_config_change=rc.allow_config_change, overrides=overrides)
        log_memory_plan(rc, c, run_dir)  # one line before fitting, cached per config in the (now claimed) run dir
        fit(objects)
        metrics = finish(objects)
    return metrics, objects
