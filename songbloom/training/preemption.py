"""Survive preemption and time limits: checkpoint at a step boundary, requeue once, resume in the same run dir.

Why not Lightning's own SLURM requeue: it saves inside the signal handler (in the middle of whatever the rank
was doing, sometimes a collective), writes ``hpc_ckpt_*.ckpt`` outside our run-dir layout, fixes the signal to
one choice, and does nothing at the SIGTERM of a time limit. Here the handler only sets a flag. At the next
optimizer-step boundary all ranks agree on the flags (one all-reduce), save one atomic checkpoint into the run
dir (the file auto-resume picks up), rank 0 runs ``scontrol requeue`` and every rank exits. The requeued job
has the same id and run name, so it lands in the same run dir, resumes from that checkpoint and continues the
same W&B run. Use this with ``SLURMEnvironment(auto_requeue=False)`` so exactly one mechanism acts.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from songbloom.config.run import SIGTERM_POLICIES, PreemptionConfig
from songbloom.utils import slurm
from songbloom.utils.logging import RankedLogger

log = RankedLogger(__name__)

__all__ = ["SIGTERM_POLICIES", "PreemptedExit", "PreemptionCheckpoint", "from_config", "parse_signal"]


class PreemptedExit(SystemExit):
    """Raised on every rank after the preemption checkpoint; the exit code says whether the job was requeued."""


def parse_signal(name: str | int | signal.Signals, env: dict[str, str] | None = None) -> signal.Signals:
    """``USR1``, ``SIGUSR1``, ``10``, a ``signal.Signals`` or ``auto`` -> ``signal.Signals``.

    ``auto`` is USR1, except in a job submitted by submitit (the Hydra submitit launcher), which asks SLURM for
    ``SUBMITIT_PREEMPT_SIGNAL`` (USR2 by default) instead.
    """
    if isinstance(name, signal.Signals):
        return name
    text = str(name).strip().upper()
    if text == "AUTO":
        env = dict(os.environ) if env is None else env
        text = env.get("SUBMITIT_PREEMPT_SIGNAL", "USR2") if env.get("SUBMITIT_EXECUTOR") == "slurm" else "USR1"
        text = text.strip().upper()
    if text.isdigit():
        return signal.Signals(int(text))
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return signal.Signals[text]
    except KeyError:
        raise ValueError(f"preemption.signal={name!r} is not a signal name (use e.g. USR1, USR2, SIGUSR1)") from None


class PreemptionCheckpoint(L.Callback):
    """Checkpoint-and-requeue on ``signal`` (default SIGUSR1) and on SIGTERM; see the module docstring.

    Args:
        ckpt_dir: the run dir's ``checkpoints`` folder (the one auto-resume reads). A step checkpoint callback
            with a ``save(trainer, step)`` method (the run's atomic checkpointer) is used when present, so the
            preemption checkpoint has the same name, format and retention as the others.
        signal_name: the signal the job receives ahead of preemption (match ``#SBATCH --signal=USR1@120``);
            ``auto``: USR1, or submitit's USR2 under the Hydra submitit launcher.
        requeue: ``auto`` requeues inside a SLURM batch job; ``true``/``false`` force it.
        on_sigterm: ``requeue_near_time_limit`` (requeue when the job has less than ``time_limit_margin_s`` left,
            i.e. the time limit; a user ``scancel`` only checkpoints), ``requeue``, ``checkpoint`` or ``ignore``.
        check_every_n_steps: how often the ranks agree on the flags (one tiny all-reduce each time).
    """

    def __init__(
        self,
        ckpt_dir: str | Path,
        signal_name: str | int = "auto",
        requeue: bool | str = "auto",
        on_sigterm: str = "requeue_near_time_limit",
        time_limit_margin_s: float = 300.0,
        check_every_n_steps: int = 1,
    ):
        if on_sigterm not in SIGTERM_POLICIES:
            raise ValueError(f"preemption.on_sigterm={on_sigterm!r}: choose from {', '.join(SIGTERM_POLICIES)}")
        if str(requeue).lower() not in ("auto", "true", "false"):
            raise ValueError(f"preemption.requeue={requeue!r}: choose auto, true or false")
        self.ckpt_dir = Path(ckpt_dir)
        self.signal = parse_signal(signal_name)
        if self.signal in (signal.SIGTERM, signal.SIGKILL, signal.SIGSTOP):
            raise ValueError(
                f"preemption.signal={self.signal.name}: use a signal SLURM sends *before* the end "
                "(USR1/USR2 with #SBATCH --signal); SIGTERM is handled separately (preemption.on_sigterm)"
            )
        self.requeue = str(requeue).lower()
        self.on_sigterm = on_sigterm
        self.time_limit_margin_s = float(time_limit_margin_s)
        self.check_every_n_steps = max(int(check_every_n_steps), 1)
        self._received: set[int] = set()
        self._done = False
        self._deadline: float | None = None  # time.monotonic() of the job's time limit, when it has one

    # -- signal handling: set a flag, nothing else -------------------------------------------------------------
    @property
    def signal_pending(self) -> bool:
        """True once a preemption or termination signal arrived (other callbacks cut long work short)."""
        return bool(self._received)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._received.add(signum)

    def install_handlers(self) -> None:
        """(Re-)register the flag-only handlers; Lightning replaces SIGTERM's handler when ``fit`` starts."""
        signal.signal(self.signal, self._on_signal)
        if self.on_sigterm != "ignore":
            signal.signal(signal.SIGTERM, self._on_signal)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":
            self.install_handlers()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.install_handlers()
        job = slurm.current_job()
        if job is not None and self.on_sigterm == "requeue_near_time_limit":
            # Asked now: once the limit is reached SLURM no longer reports a time left for the job.
            left = slurm.time_left_s(job)
            self._deadline = None if left is None else time.monotonic() + left
        log.info(
            "preemption: %s and SIGTERM (%s) -> checkpoint at the next step into %s%s",
            self.signal.name,
            self.on_sigterm,
            self.ckpt_dir,
            f", SLURM job {job.requeue_id} (restart {job.restart_count})" if job else "",
            rank=0,
        )

    # -- acting at a step boundary -----------------------------------------------------------------------------
    def _agreed_flags(self, trainer: L.Trainer) -> tuple[bool, bool]:
        """(got the preemption signal, got SIGTERM) on *any* rank: a signal may reach only some ranks."""
        flags = torch.tensor(
            [int(self.signal in self._received), int(signal.SIGTERM in self._received)],
            dtype=torch.int32,
            device=trainer.strategy.root_device,
        )
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
        return bool(flags[0]), bool(flags[1])

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._done or trainer.global_step % self.check_every_n_steps:
            return
        got_signal, got_term = self._agreed_flags(trainer)
        if not (got_signal or got_term):
            return
        self._done = True
        self.preempt(trainer, "signal" if got_signal else "sigterm")

    def _should_requeue(self, reason: str, job: slurm.SlurmJob | None) -> bool:
        if job is None or job.interactive:
            return self.requeue == "true"
        if self.requeue == "false":
            return False
        if reason == "signal":
            return True
        if self.on_sigterm == "requeue":
            return True
        if self.on_sigterm == "requeue_near_time_limit":
            return self._deadline is not None and self._deadline - time.monotonic() <= self.time_limit_margin_s
        return False

    def _save(self, trainer: L.Trainer) -> Path:
        step = trainer.global_step
        for cb in trainer.callbacks:
            if cb is not self and callable(getattr(cb, "save", None)) and hasattr(cb, "ckpt_dir"):
                if getattr(cb, "_last_saved_step", None) == step:
                    return Path(cb.ckpt_dir) / "last.ckpt"  # this step is already on disk
                return cb.save(trainer, step)
        # No run checkpointer: the same atomic step-N.ckpt + last.ckpt layout that auto-resume reads.
        from songbloom.training.checkpointing import write_step_checkpoint

        return write_step_checkpoint(trainer, self.ckpt_dir, step)

    def preempt(self, trainer: L.Trainer, reason: str) -> None:
        """Save, requeue (rank 0) and exit every rank."""
        t0 = time.monotonic()
        job = slurm.current_job()
        what = self.signal.name if reason == "signal" else "SIGTERM"
        log.warning("received %s: checkpointing at step %d", what, trainer.global_step, rank=0)
        path = self._save(trainer)
        requeue = self._should_requeue(reason, job)
        requeued = False
        if trainer.is_global_zero:
            if requeue and job is not None:
                requeued = slurm.requeue(job)
            record = {
                "step": trainer.global_step,
                "reason": what,
                "checkpoint": str(path),
                "requeued": requeued,
                "job": job.requeue_id if job else None,
                "restart_count": job.restart_count if job else None,
                "save_s": round(time.monotonic() - t0, 3),
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            with open(self.ckpt_dir.parent / "preemptions.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            log.warning(
                "preemption checkpoint %s (%.1f s); %s",
                path,
                record["save_s"],
                f"requeued SLURM job {job.requeue_id}" if requeued else "not requeued: the run stops here",
            )
        for lg in trainer.loggers:
            lg.finalize("preempted")
        trainer.strategy.barrier("songbloom_preemption_exit")
        trainer.should_stop = True
        # Exit 0 when the job is requeued (SLURM restarts it), else 128+signal like a process killed by it.
        signum = self.signal if reason == "signal" else signal.SIGTERM
        raise PreemptedExit(0 if requeue else 128 + int(signum))


def from_config(cfg: PreemptionConfig | dict[str, Any] | None, ckpt_dir: str | Path) -> PreemptionCheckpoint | None:
    """The callback for the ``preemption:`` config block (None when ``enabled: false``)."""
    if isinstance(cfg, PreemptionConfig):
        cfg = dataclasses.asdict(cfg)
    cfg = dict(cfg or {})
    if not cfg.pop("enabled", True):
        return None
    return PreemptionCheckpoint(
        ckpt_dir,
        signal_name=cfg.get("signal", "auto"),
        requeue=cfg.get("requeue", "auto"),
        on_sigterm=cfg.get("on_sigterm", "requeue_near_time_limit"),
        time_limit_margin_s=float(cfg.get("time_limit_margin_s", 300)),
        check_every_n_steps=int(cfg.get("check_every_n_steps", 1)),
    )
