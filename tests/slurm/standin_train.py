"""Stand-in for ``train.py`` in the SLURM tests until the training stack is on main.

It takes the same ``key=value`` overrides the sbatch recipes pass (unknown keys are ignored) and uses the real
scale-out pieces: the task-layout check, ``SLURMEnvironment(auto_requeue=False)``, the DDP strategy builder and
the preemption callback, with the run-dir layout of the training stack (``<runs_dir>/<run_name>/checkpoints``,
``last.ckpt``, ``wandb_id.txt``). Batches are drawn from (step, rank) seeds, so a resumed run is bit-identical
to an uninterrupted one and the tests can compare final checksums.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import uuid
from pathlib import Path

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from songbloom.training.scale_out import scale_out_trainer_kwargs
from songbloom.utils.logging import RankedLogger

DDP_GLOO = {"_target_": "songbloom.training.strategies.ddp", "process_group_backend": "gloo"}

log = RankedLogger("standin")


def parse_overrides(argv: list[str]) -> dict[str, str]:
    out = {}
    for item in argv:
        if "=" in item:
            k, v = item.split("=", 1)
            out[k.lstrip("+")] = v
    return out


class StepIndex(Dataset):
    """Only counts batches; the data itself is drawn from the step seed in ``training_step``."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor(i)


class TinyRegression(L.LightningModule):
    def __init__(self, metrics_path: Path, step_sleep: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 1))
        self.metrics_path = metrics_path
        self.step_sleep = step_sleep
        self.batches_seen = 0

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(1000 * self.global_step + self.global_rank)
        x = torch.randn(8, 16, generator=g)
        y = x[:, :1] * 2.0 - x[:, 1:2]
        loss = nn.functional.mse_loss(self.net(x), y)
        self.batches_seen += 1
        if self.step_sleep:
            time.sleep(self.step_sleep)
        if self.trainer.is_global_zero:
            # Written here, not in a batch-end hook: the preemption callback ends the run inside that hook.
            rec = {
                "step": self.global_step + 1,
                "loss": float(loss.detach()),
                "restart": os.environ.get("SLURM_RESTART_COUNT"),
            }
            with open(self.metrics_path, "a") as f:
                f.write(json.dumps(rec) + "\n")
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    o = parse_overrides(sys.argv[1:])
    devices = int(o.get("trainer.devices", 1))
    num_nodes = int(o.get("trainer.num_nodes", 1))
    max_steps = int(o.get("trainer.max_steps", 10))
    restart = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
    # Sleep only on the first attempt: the test sends USR1 during it, the requeued attempt runs at full speed.
    step_sleep = float(o.get("standin.step_sleep", 0)) if restart == 0 else 0.0
    run_dir = Path(o.get("paths.runs_dir", "outputs/runs")) / o.get("run_name", "standin")
    ckpt_dir = run_dir / "checkpoints"
    cfg = {
        "trainer": {"accelerator": "cpu", "devices": devices, "num_nodes": num_nodes},
        "strategy": DDP_GLOO if devices * num_nodes > 1 else None,
        "preemption": {"signal": o.get("preemption.signal", "auto")},
    }
    extra = scale_out_trainer_kwargs(cfg, ckpt_dir)  # raises before Lightning on a task-layout mismatch
    rank = int(os.environ.get("SLURM_PROCID", "0"))
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        id_file = run_dir / "wandb_id.txt"
        if not id_file.is_file():
            id_file.write_text(uuid.uuid4().hex[:12])
    else:
        for _ in range(300):
            if (run_dir / "wandb_id.txt").is_file():
                break
            time.sleep(0.1)
    wandb_id = (run_dir / "wandb_id.txt").read_text().strip()
    last = ckpt_dir / "last.ckpt"
    resume = last if last.is_file() else None
    print(
        f"[standin] rank={rank} restart={restart} resume_from={resume} wandb_id={wandb_id} "
        f"plugins={[type(p).__name__ for p in extra['plugins']]} auto_requeue="
        f"{[getattr(p, 'auto_requeue', None) for p in extra['plugins']]}",
        flush=True,
    )
    L.seed_everything(0, verbose=False)
    model = TinyRegression(run_dir / "metrics.jsonl", step_sleep)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=devices,
        num_nodes=num_nodes,
        max_steps=max_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(run_dir),
        **extra,
    )
    loader = DataLoader(StepIndex(int(o.get("standin.num_items", 37))), batch_size=4, num_workers=0)
    trainer.fit(model, loader, ckpt_path=str(resume) if resume else None, weights_only=True)
    checksum = sum(float(p.detach().double().sum()) for p in model.parameters())
    env = trainer._accelerator_connector.cluster_environment
    log.info("finished")
    print(
        f"[standin] rank={trainer.global_rank} FINISHED global_step={trainer.global_step} "
        f"world_size={trainer.world_size} cluster_env={type(env).__name__} "
        f"batches_this_attempt={model.batches_seen} checksum={checksum:.10f}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
