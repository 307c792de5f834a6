"""The peak memory of real training steps on the CPU, measured independently of ``songbloom.plan``.

The profiler's memory events (``torch.profiler`` with ``profile_memory``) of everything a training step holds:
the generator built by the training code (``build_model``), the LightningModule's loss, AdamW as the module
builds it, EMA updates. The peak is the highest running sum of allocations minus frees from before the model
exists to the end of the last step; nothing of the estimator is used.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile


def compose_run_config(overrides: list[str]) -> dict[str, Any]:
    """The resolved config ``train.py <overrides>`` runs with (composed here, not by the estimator)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf, open_dict

    conf = Path(__file__).resolve().parents[2] / "conf"
    with initialize_config_dir(version_base="1.3", config_dir=str(conf)):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.experiment_name = cfg.hydra.runtime.choices.get("experiment")
        del cfg["hydra"]
    return OmegaConf.to_container(cfg, resolve=True)


def running_peak(prof) -> int:
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")
    level = top = 0
    for _, n in events:
        level += n
        top = max(top, level)
    return top


def measured_peak(c: dict[str, Any], steps: int = 3) -> int:
    """Peak bytes of ``steps`` training steps of the composed run config ``c`` on the CPU."""
    from songbloom.building.model import preset_config
    from songbloom.checkpoints.init_weights import build_model
    from songbloom.training.batch import as_training_batch
    from songbloom.training.data import build_datamodule
    from songbloom.training.lit_module import SongBloomLitModule
    from songbloom.training.optim import build_optimizer, parameter_groups
    from songbloom.training.run import parse_config

    rc = parse_config(c)
    torch.manual_seed(0)
    dm = build_datamodule(rc.data, preset_config(rc), seed=0)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    autocast = str(rc.trainer.get("precision")).startswith("bf16")
    o = rc.training.optim
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        model, _, _, _ = build_model(rc)
        lit = SongBloomLitModule(model, rc.training).train()
        opt = build_optimizer(parameter_groups(model, o.weight_decay), o.lr, tuple(o.betas), o.eps)
        b = as_training_batch(batch)
        for _ in range(steps):
            ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
            with ctx:
                loss = lit.compute_losses(b, train=True).loss
            loss.backward()
            del loss
            opt.step()
            opt.zero_grad(set_to_none=True)
            if lit.ema is not None:
                lit.ema.update(model)
    return running_peak(prof)
