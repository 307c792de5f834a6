"""``run(cfg)``: everything ``train.py`` does, from a resolved Hydra config to a trained, exported run dir."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from songbloom.building.devices import prepare_training_accelerator
from songbloom.checkpoints.init_weights import build_model
from songbloom.config import SongBloomConfig
from songbloom.training.callbacks import StepRecorder, read_step_metrics
from songbloom.training.checkpointing import AtomicStepCheckpoint, find_resume_checkpoint
from songbloom.training.data import build_datamodule
from songbloom.training.lit_module import OptimSettings, SongBloomLitModule, TrainSettings
from songbloom.training.run_dir import atomic_write_text, default_run_name, prepare_run_dir
from songbloom.training.run_licences import training_licences

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
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    if logging.getLogger().level > logging.INFO:
        logging.getLogger().setLevel(logging.INFO)
    return handler


def train_settings(c: dict[str, Any]) -> TrainSettings:
    t = dict(c.get("training") or {})
    optim = OptimSettings(**(t.pop("optim", {}) or {}))
    keep = TrainSettings.__dataclass_fields__
    return TrainSettings(optim=optim, **{k: v for k, v in t.items() if k in keep and k != "optim"})


def _loggers(c: dict[str, Any], run_dir: Path):
    kind = (c.get("logger") or {}).get("kind", "none")
    if kind == "none":
        return False
    if kind == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(save_dir=str(run_dir), name="csv", version="")
    if kind == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        lc = c["logger"]
        id_file = run_dir / "wandb_id.txt"  # one W&B run per run dir: requeues continue the same curves
        if not id_file.is_file():
            import uuid

            atomic_write_text(id_file, uuid.uuid4().hex[:12])
        return WandbLogger(
            project=lc.get("project", "songbloom"),
            name=run_dir.name,
            id=id_file.read_text().strip(),
            save_dir=str(run_dir),
            offline=bool(lc.get("offline", True)),
            resume="allow",
            config=c,
            log_model=False,
        )
    raise ValueError(f"logger.kind={kind!r}: choose wandb, csv or none")


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


def _demo_song(dm, sb_cfg: SongBloomConfig, run_dir: Path, demo: dict[str, Any]) -> Path:
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
        seconds=float(demo.get("generate_seconds", 4.0)),
        seed=int(demo.get("seed", 0)),
    )


def _run_licences(c: dict[str, Any], data_cfg: dict[str, Any], init_source: str) -> list[dict[str, Any]]:
    """What the run inherits (data, MuQ weights behind the codebook, initial weights): see songbloom.licences."""
    init = c.get("init") or {}
    return training_licences(
        data_kind=str(data_cfg.get("kind", "synthetic")),
        shards_dir=data_cfg.get("shards_dir"),
        init_source=init_source,
        init_description=str(init.get("release_name") or init.get("export_path") or ""),
        codebook_path=(c.get("sketch") or {}).get("codebook_path"),
    )


def run(cfg: Any) -> dict[str, Any]:
    """Train (or resume) the run described by ``cfg``; returns summary metrics and the run's paths."""
    import lightning as L

    c = to_container(cfg)
    tcfg = dict(c.get("trainer") or {})
    check_precision(tcfg.get("precision", "32-true"), str(tcfg.get("accelerator", "cpu")))
    prepare_training_accelerator(tcfg)  # MPS: float32 and the per-op CPU fallback, with notices
    run_name = c.get("run_name") or default_run_name(c)
    run_dir = prepare_run_dir(
        c["paths"]["runs_dir"], run_name, c, allow_config_change=bool(c.get("allow_config_change"))
    )
    handler = _file_logging(run_dir)
    threads_before = torch.get_num_threads()
    if c.get("num_threads"):
        torch.set_num_threads(int(c["num_threads"]))  # scoped to this run, restored below
    try:
        sk = c.get("sketch") or {}
        if sk.get("required") and not sk.get("codebook_path"):
            raise ValueError(
                "sketch.codebook_path is required for this experiment: the shards' sketch tokens come from a "
                "codebook you train with `python -m songbloom.sketch train ...`; pass sketch.codebook_path=<file>"
            )
        logger.info("run dir %s", run_dir)
        L.seed_everything(int(c.get("seed", 0)), workers=True, verbose=False)
        model, sb_cfg, report, source = build_model(c)
        demo = c.get("demo") or {}
        data_cfg = c["data"]
        if demo.get("enabled") and demo.get("prepare_data"):
            from songbloom.training.demo import prepare_demo_data_once

            # Its own RNG stream: training must not depend on whether the demo data was already built.
            with torch.random.fork_rng(devices=[]):
                data_cfg = prepare_demo_data_once(c, sb_cfg)
        dm = build_datamodule(data_cfg, sb_cfg, seed=int(c.get("seed", 0)))
        lit = SongBloomLitModule(model, train_settings(c), run_config=c, trainable_report=report)
        lit.licences = _run_licences(c, data_cfg, source)
        ck = (c.get("callbacks") or {}).get("checkpoint") or {}
        fault = c.get("fault") or {}
        callbacks = [
            StepRecorder(run_dir / "metrics.jsonl"),
            AtomicStepCheckpoint(
                run_dir / "checkpoints",
                int(ck.get("every_n_steps", 0)),
                int(ck.get("keep_last", 3)),
                bool(ck.get("save_at_end", True)),
                kill_after_step=fault.get("sigkill_after_step"),
                kill_during_save_step=fault.get("sigkill_during_save_step"),
            ),
        ]
        from songbloom.eval.callback import build_eval_callback

        eval_cb = build_eval_callback((c.get("callbacks") or {}).get("eval"), run_dir=run_dir)
        if eval_cb is not None:  # held-out teacher-forced metrics every N steps (time-boxed)
            callbacks.append(eval_cb)
        from songbloom.training.callback_assembly import build_training_callbacks

        callbacks += build_training_callbacks(c, run_dir, sb_cfg)  # demo songs (A/B vs base), progress bar
        resume = c.get("resume", "auto")
        ckpt_path = None
        if resume == "auto":
            ckpt_path = find_resume_checkpoint(run_dir / "checkpoints", hpc_dir=run_dir)
        elif resume not in (None, "never", False):
            ckpt_path = Path(str(resume))
        if ckpt_path is not None:
            logger.info("resuming from %s", ckpt_path)
        from songbloom.training.scale_out import scale_out_trainer_kwargs

        # SLURM layout check, strategy, our preemption handling (Lightning's own requeue is switched off).
        scale_out = scale_out_trainer_kwargs(c, run_dir / "checkpoints")
        callbacks += scale_out["callbacks"]
        if "strategy" in scale_out:
            tcfg["strategy"] = scale_out["strategy"]
        trainer = L.Trainer(
            **tcfg,
            plugins=scale_out["plugins"],
            callbacks=callbacks,
            logger=_loggers(c, run_dir),
            default_root_dir=str(run_dir),
            enable_checkpointing=False,
        )
        trainer.fit(lit, datamodule=dm, ckpt_path=str(ckpt_path) if ckpt_path else None, weights_only=True)
        result: dict[str, Any] = summarize(run_dir / "metrics.jsonl")
        result["run_dir"] = str(run_dir)
        result["checkpoint"] = str(run_dir / "checkpoints" / "last.ckpt")
        result["resumed_from"] = str(ckpt_path) if ckpt_path else None
        ex = c.get("export") or {}
        if ex.get("enabled", True) and trainer.is_global_zero:
            from songbloom.training.export import export_run

            paths = export_run(
                lit,
                sb_cfg,
                run_dir,
                c,
                extra={
                    "trainable": report,
                    "init_source": source,
                    "sketch_codebook": (c.get("sketch") or {}).get("codebook_path"),
                },
            )
            result.update({f"export_{k}": str(v) for k, v in paths.items()})
        if demo.get("enabled") and demo.get("generate") and trainer.is_global_zero and "export_generator" in result:
            song = _demo_song(dm, sb_cfg, run_dir, demo)
            result["song"] = str(song)
        if trainer.is_global_zero:
            atomic_write_text(run_dir / "summary.json", json.dumps(result, indent=1))
        result["_lit_module"] = lit  # for callers in-process (demo, tests); not serialised
        result["_songbloom_config"] = sb_cfg
        return result
    finally:
        torch.set_num_threads(threads_before)
        logging.getLogger().removeHandler(handler)
        handler.close()
