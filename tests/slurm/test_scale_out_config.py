"""No cluster needed: recipes render and validate, strategies and the submitit launcher compose, the task-layout
check names the #SBATCH line, the preemption callback checkpoints and stops a real (single-process) run."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import pytest
import yaml

from songbloom.training.strategies import build_strategy
from songbloom.utils import slurm
from songbloom.utils.logging import RankedLogger

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"
EXPECTED_LAYOUT = {  # recipe -> (nodes, tasks per node)
    "lora_1gpu": ("1", "1"),
    "full_8gpu": ("1", "8"),
    "full_8gpu_fsdp": ("1", "8"),
    "multinode": ("2", "8"),
    "ci_cpu_ddp": ("1", "2"),
}


@pytest.mark.parametrize("recipe", sorted(EXPECTED_LAYOUT))
def test_training_recipes_render_valid_scripts(render_module, recipe):
    script = render_module.render(render_module.resolve(recipe))
    assert render_module.check_script(script) == []
    opts = render_module.sbatch_options(script)
    nodes, per_node = EXPECTED_LAYOUT[recipe]
    assert (opts["--nodes"], opts["--ntasks-per-node"]) == (nodes, per_node)
    assert opts["--signal"].startswith("USR1@") and "--requeue" in opts and opts["--open-mode"] == "append"
    assert "--ntasks" not in opts and "{{" not in script
    srun = [x for x in script.splitlines() if x.startswith("srun ")]
    assert len(srun) == 1 and f"trainer.devices={per_node} trainer.num_nodes={nodes}" in srun[0]
    if recipe != "ci_cpu_ddp":
        assert opts["--gpus-per-node"] == per_node


def test_array_recipe_and_overrides(render_module):
    script = render_module.render(render_module.resolve("preprocess_array", {"num_tasks": "4", "max_parallel": "2"}))
    opts = render_module.sbatch_options(script)
    assert opts["--array"] == "0-3%2" and opts["--ntasks-per-node"] == "1" and opts["--output"].endswith("%A_%a.out")
    assert render_module.check_script(script) == []
    assert "srun python scripts/preprocess.py" in script
    extra = render_module.render(render_module.resolve("lora_1gpu", {"partition": "a100"}, ["trainer.max_steps=9"]))
    assert "#SBATCH --partition=a100" in extra and extra.rstrip().endswith("trainer.max_steps=9")


def test_check_script_catches_broken_scripts(render_module):
    good = render_module.render(render_module.resolve("full_8gpu"))
    assert render_module.check_script(good) == []
    broken = {
        "ntasks": good.replace("--ntasks-per-node=8", "--ntasks=8"),
        "srun": good.replace("srun --kill-on-bad-exit=1 ", ""),
        "requeue": good.replace("#SBATCH --requeue\n", ""),
        "append": good.replace("--open-mode=append", "--open-mode=truncate"),
        "signal": good.replace("#SBATCH --signal=USR1@180\n", ""),
        "devices": good.replace("trainer.devices=8", "trainer.devices=4"),
    }
    for what, script in broken.items():
        assert render_module.check_script(script), f"{what} not caught"


def test_render_cli_check_and_list(render_module, capsys):
    assert render_module.main(["--list"]) == 0
    assert "multinode" in capsys.readouterr().out
    assert render_module.main(["multinode", "--check"]) == 0
    assert "#SBATCH --nodes=2" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="unknown recipe"):
        render_module.main(["nope"])


def test_submitit_launcher_composes_and_renders(tmp_path):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            config_name=None,
            overrides=["hydra/launcher=submitit_slurm", "+trainer.devices=4", "+trainer.num_nodes=2"],
            return_hydra_config=True,
        )
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    assert params["_target_"].endswith("SlurmLauncher") and params["max_num_timeout"] == 0
    assert (cfg.hydra.launcher.tasks_per_node, cfg.hydra.launcher.nodes) == (4, 2)
    # Build the sbatch text the way the plugin does (dry run: nothing is submitted).
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    resolved = {k: v for k, v in params.items() if k not in ("_target_", "submitit_folder", "max_num_timeout")}
    resolved.update(tasks_per_node=4, nodes=2, gpus_per_node=4, name="train")
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor = submitit.AutoExecutor(cluster="slurm", folder=str(tmp_path), slurm_max_num_timeout=0)
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in resolved.items()})
    text = executor._executor._make_submission_file_text("python -u -m submitit.core._submit x", "uid")
    assert "#SBATCH --ntasks-per-node=4" in text and "#SBATCH --nodes=2" in text
    assert "#SBATCH --signal=USR2@180" in text and "#SBATCH --requeue" in text
    assert "#SBATCH --open-mode=append" in text and "srun " in text


def test_strategy_configs_build():
    from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy

    from songbloom.models.dit import DiTBlock
    from songbloom.models.lm import LlamaDecoderLayer

    ddp = build_strategy(yaml.safe_load((CONF / "strategy/ddp.yaml").read_text()), lora_enabled=True)
    assert isinstance(ddp, DDPStrategy) and ddp._ddp_kwargs["find_unused_parameters"] is False
    fsdp_cfg = yaml.safe_load((CONF / "strategy/fsdp.yaml").read_text())
    fsdp = build_strategy(fsdp_cfg)
    assert isinstance(fsdp, FSDPStrategy) and fsdp._state_dict_type == "full"
    assert set(fsdp.kwargs["auto_wrap_policy"]._module_classes) == {LlamaDecoderLayer, DiTBlock}
    assert fsdp.kwargs["use_orig_params"] is True
    hybrid = yaml.safe_load((CONF / "strategy/fsdp_hybrid.yaml").read_text())
    assert hybrid["sharding_strategy"] == "HYBRID_SHARD" and hybrid["defaults"] == ["fsdp"]
    with pytest.raises(ValueError, match="unknown block"):
        build_strategy({**fsdp_cfg, "auto_wrap": ["os.system"]})
    with pytest.raises(ValueError, match="choose auto"):
        build_strategy({"kind": "deepspeed"})  # no _target_: the old `kind:` dispatch is gone
    assert build_strategy(None) == "auto"


def test_strategy_and_trainer_groups_compose_with_train_yaml():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        # `strategy: null` in train.yaml's defaults makes the group selectable; without it, append it.
        defaults = yaml.safe_load((CONF / "train.yaml").read_text())["defaults"]
        has_group = any(isinstance(d, dict) and "strategy" in d for d in defaults)
        choice = "strategy=fsdp_hybrid" if has_group else "+strategy=fsdp_hybrid"
        cfg = compose(config_name="train", overrides=["trainer=ddp_multinode", choice])
    assert (cfg.trainer.num_nodes, cfg.trainer.devices) == (2, 8)
    assert cfg.strategy._target_ == "songbloom.training.strategies.fsdp"
    assert cfg.strategy.sharding_strategy == "HYBRID_SHARD"


def test_fsdp_policy_wraps_every_lm_layer_and_dit_block():
    """The policy Lightning hands to FSDP picks exactly the sketch-LM layers and DiT blocks of a real model.

    (Running FSDP itself needs CUDA here: torch's FSDP1 refuses CPU devices, and Lightning refuses FSDP on CPU.)
    """
    from songbloom.config import SongBloomConfig
    from songbloom.models.songbloom import SongBloomModel
    from songbloom.training.strategies import wrappable_blocks

    model = SongBloomModel(SongBloomConfig.from_name("tiny").model)
    policy = build_strategy(yaml.safe_load((CONF / "strategy/fsdp.yaml").read_text())).kwargs["auto_wrap_policy"]
    chosen = set(policy._run_policy(model, set(), {}))
    blocks = {m for m in model.modules() if isinstance(m, tuple(wrappable_blocks().values()))}
    kinds = {type(m).__name__ for m in blocks}
    assert kinds == {"LlamaDecoderLayer", "DiTBlock"} and chosen == blocks


def test_task_layout_check_names_the_sbatch_line():
    env = {"SLURM_JOB_ID": "7", "SLURM_JOB_NAME": "sb", "SLURM_NTASKS": "8", "SLURM_NTASKS_PER_NODE": "4",
           "SLURM_NNODES": "2"}  # fmt: skip
    assert slurm.check_task_layout(4, 2, "gpu", env).job_id == "7"
    with pytest.raises(slurm.SlurmLayoutError, match=r"#SBATCH --ntasks-per-node=8"):
        slurm.check_task_layout(8, 2, "gpu", env)
    with pytest.raises(slurm.SlurmLayoutError, match=r"#SBATCH --nodes=1"):
        slurm.check_task_layout(4, 1, "gpu", env)
    no_per_node = {k: v for k, v in env.items() if k != "SLURM_NTASKS_PER_NODE"}
    with pytest.raises(slurm.SlurmLayoutError, match=r"--ntasks=8.*#SBATCH --ntasks-per-node=4"):
        slurm.check_task_layout(4, 2, "gpu", no_per_node)
    assert slurm.check_task_layout(8, 3, "gpu", {}) is None  # outside SLURM nothing is checked
    assert slurm.check_task_layout(8, 3, "gpu", {**env, "SLURM_JOB_NAME": "bash"}).interactive
    assert slurm.check_task_layout([0, 1, 2, 3], 2, "gpu", env) is not None
    arr = slurm.current_job({**env, "SLURM_ARRAY_JOB_ID": "5", "SLURM_ARRAY_TASK_ID": "3", "SLURM_RESTART_COUNT": "2"})
    assert arr.requeue_id == "5_3" and arr.restart_count == 2


def test_time_left_parsing():
    assert slurm.parse_time_left("1-02:03:04") == 93784
    assert slurm.parse_time_left("02:03:04") == 7384
    assert slurm.parse_time_left("3:04") == 184
    assert slurm.parse_time_left("UNLIMITED") is None and slurm.parse_time_left("INVALID") is None


def test_ranked_logger(caplog, monkeypatch):
    log = RankedLogger("songbloom.test_ranked", rank_zero_only=True)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with caplog.at_level(logging.INFO, logger="songbloom.test_ranked"):
        log.info("only rank zero")
        log.info("rank one %d", 1, rank=1)
        RankedLogger("songbloom.test_ranked").warning("everyone")
    assert [r.getMessage() for r in caplog.records] == ["[rank 1/2] rank one 1", "[rank 1/2] everyone"]


def test_signal_names():
    from songbloom.training.preemption import parse_signal

    assert parse_signal("USR1") == parse_signal("SIGUSR1") == parse_signal(10) == signal.SIGUSR1
    assert parse_signal("auto", env={}) == signal.SIGUSR1
    assert parse_signal("auto", env={"SUBMITIT_EXECUTOR": "slurm"}) == signal.SIGUSR2
    with pytest.raises(ValueError, match="not a signal name"):
        parse_signal("USR9")


def _fit(tmp_path: Path, max_steps: int, callback, resume: Path | None = None):
    import lightning as L
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(4, 1)
            self.steps_run = 0

        def training_step(self, batch, batch_idx):
            self.steps_run += 1
            if self.global_step == 3 and resume is None:
                os.kill(os.getpid(), signal.SIGUSR1)  # arrives mid-step; acted on at the step boundary
            return nn.functional.mse_loss(self.net(batch[0]), batch[1])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    L.seed_everything(0, verbose=False)
    model = Tiny()
    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_steps=max_steps, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[callback], default_root_dir=str(tmp_path),
    )  # fmt: skip
    data = DataLoader(TensorDataset(torch.randn(64, 4), torch.randn(64, 1)), batch_size=4)
    trainer.fit(model, data, ckpt_path=str(resume) if resume else None, weights_only=True)
    return trainer, model


def test_preemption_checkpoints_at_step_boundary_and_stops(tmp_path, monkeypatch):
    from songbloom.training.preemption import PreemptedExit, PreemptionCheckpoint

    for var in [k for k in os.environ if k.startswith("SLURM_")]:
        monkeypatch.delenv(var)
    previous = signal.getsignal(signal.SIGUSR1)
    ckpt_dir = tmp_path / "run" / "checkpoints"
    try:
        with pytest.raises(PreemptedExit) as stop:
            _fit(tmp_path, 10, PreemptionCheckpoint(ckpt_dir, signal_name="USR1"))
    finally:
        signal.signal(signal.SIGUSR1, previous)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    assert stop.value.code == 128 + signal.SIGUSR1  # not requeued outside SLURM: "killed by USR1"
    assert (ckpt_dir / "step-0000004.ckpt").is_file() and (ckpt_dir / "last.ckpt").is_file()
    assert not list(ckpt_dir.glob(".*tmp"))
    record = yaml.safe_load((tmp_path / "run" / "preemptions.jsonl").read_text())
    assert record["step"] == 4 and record["requeued"] is False and record["reason"] == "SIGUSR1"
    # Resuming from last.ckpt finishes the remaining steps only.
    try:
        trainer, model = _fit(tmp_path, 10, PreemptionCheckpoint(ckpt_dir), resume=ckpt_dir / "last.ckpt")
    finally:
        signal.signal(signal.SIGUSR1, previous)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    assert trainer.global_step == 10 and model.steps_run == 6
    with pytest.raises(ValueError, match="SIGTERM is handled separately"):
        PreemptionCheckpoint(ckpt_dir, signal_name="TERM")


def test_sigterm_requeues_only_near_the_time_limit(tmp_path):
    import time

    from songbloom.training.preemption import PreemptionCheckpoint

    job = slurm.SlurmJob("9", "sb", 2, 2, 1, 0)
    cb = PreemptionCheckpoint(tmp_path, time_limit_margin_s=300)
    cb._deadline = time.monotonic() + 60  # the time limit is near: SIGTERM means "out of time", requeue
    assert cb._should_requeue("sigterm", job)
    cb._deadline = time.monotonic() + 3600  # far from the limit: a user's scancel, checkpoint only
    assert not cb._should_requeue("sigterm", job)
    cb._deadline = None  # no time limit
    assert not cb._should_requeue("sigterm", job) and cb._should_requeue("signal", job)
    assert not cb._should_requeue("signal", None)  # outside SLURM nothing to requeue
    assert not PreemptionCheckpoint(tmp_path, requeue=False)._should_requeue("signal", job)
    assert PreemptionCheckpoint(tmp_path, on_sigterm="requeue")._should_requeue("sigterm", job)
    with pytest.raises(ValueError, match="on_sigterm"):
        PreemptionCheckpoint(tmp_path, on_sigterm="sometimes")
