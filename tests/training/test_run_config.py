"""The typed run config (songbloom/config/run.py) and conf/: one error naming every problem, no `kind:` dispatch,
`_target_` honoured only in the composed config, preemption: and LoRA preset/targets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from songbloom.config.run import RunConfigError
from songbloom.training.run import parse_config, to_container
from tests.training.conftest import CONF_DIR, REPO_ROOT, TINY_CPU, compose_config

# One misspelt key per block: the error names the block and lists its valid keys.
MISSPELT = {
    "training": ("+training.flow_los_weight=0.2", "flow_loss_weight"),
    "training.optim": ("+training.optim.learning_rate=1", "warmup_steps"),
    "init": ("+init.sorce=release", "source"),
    "lora": ("+lora.rnk=4", "rank"),
    "preemption": ("+preemption.sigal=USR1", "signal"),
    "export": ("+export.enabeld=false", "merge_lora"),
    "demo": ("+demo.num_song=3", "num_songs"),
    "sketch": ("+sketch.codebok_path=x", "codebook_path"),
    "trainer": ("+trainer.max_step=3", "max_steps"),
    "data": ("+data.batchsize=2", "batch_size"),
    "logger": ("+logger.projct=x", "project"),
    "callbacks.checkpoint": ("+callbacks.checkpoint.every_n_step=3", "every_n_steps"),
    "callbacks.eval": ("+callbacks.eval.every_n_step=3", "max_batches"),
    "callbacks.demo_audio": ("+callbacks.demo_audio.secs=3", "time_budget_s"),
    "strategy": ("+strategy.find_unused=true", "find_unused_parameters"),
}


def _parse(overrides: list[str]):
    return parse_config(to_container(compose_config(overrides)))


@pytest.mark.parametrize("block", sorted(MISSPELT))
def test_misspelt_key_names_block_and_valid_keys(block: str):
    override, valid = MISSPELT[block]
    extra = {"logger": ["logger=wandb"], "strategy": ["trainer=ddp"]}.get(block, [])
    with pytest.raises(RunConfigError) as err:
        _parse([*extra, override])
    msg = str(err.value)
    line = next(p for p in err.value.problems if p.startswith(f"{block}:"))
    assert "unknown key" in line and "valid keys" in line and valid in line, msg


def test_every_problem_in_one_error():
    with pytest.raises(RunConfigError) as err:
        _parse(["+lora.rnk=4", "+preemption.sigal=USR1", "+trainer.max_step=3", "preemption.on_sigterm=sometimes"])
    assert len(err.value.problems) == 4, err.value.problems


def test_no_kind_dispatch_left_in_conf():
    def keys(node):
        if isinstance(node, dict):
            for k, v in node.items():
                yield k
                yield from keys(v)
        elif isinstance(node, list):
            for v in node:
                yield from keys(v)

    offenders = [str(p.relative_to(CONF_DIR)) for p in CONF_DIR.rglob("*.yaml")
                 if "kind" in set(keys(yaml.safe_load(p.read_text())))]
    assert not offenders, f"`kind:` keys in conf/: {offenders}"


def test_trainer_ddp_selects_its_strategy():
    assert _parse(["trainer=ddp"]).strategy["_target_"] == "songbloom.training.strategies.ddp"
    assert _parse(["trainer=fsdp"]).strategy["_target_"] == "songbloom.training.strategies.fsdp"
    assert _parse(["trainer=ddp_multinode", "strategy=fsdp_hybrid"]).strategy["sharding_strategy"] == "HYBRID_SHARD"
    assert _parse([]).strategy is None


def test_lora_preset_and_targets_never_silently_override():
    ja = ["experiment=japanese_lora", "sketch.codebook_path=cb.safetensors"]
    assert _parse(ja).lora.enabled
    assert not _parse([*ja, "lora=none"]).lora.enabled  # what the user meant: no adapters
    for override in (["lora=none", "lora.targets=[lm_attn]"], ["lora=lm_all", "lora.targets=[dit_attn]"]):
        with pytest.raises(RunConfigError, match=r"lora\.preset=.* and lora\.targets=.* are both set"):
            _parse(override)


def test_preemption_signal_override_reaches_the_callback(tmp_path: Path):
    from songbloom.training.preemption import PreemptionCheckpoint
    from songbloom.training.run import run

    cfg = compose_config([f"paths.root_dir={tmp_path}", *TINY_CPU, "trainer.max_steps=1", "export.enabled=false",
                          "preemption.signal=USR1", "preemption.on_sigterm=checkpoint"])
    metrics, objects = run(cfg)
    assert metrics["steps"] == 1.0
    (cb,) = [c for c in objects["trainer"].callbacks if isinstance(c, PreemptionCheckpoint)]
    assert cb.signal == signal.SIGUSR1 and cb.on_sigterm == "checkpoint"
    assert objects["run_config"].preemption.signal == "USR1"


def test_train_py_accepts_preemption_signal(tmp_path: Path):
    cmd = [sys.executable, "train.py", f"paths.root_dir={tmp_path}", *TINY_CPU, "trainer.max_steps=1",
           "export.enabled=false", "preemption.signal=USR1"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "run dir" in proc.stdout


def test_stored_configs_are_never_instantiated(tmp_path: Path, monkeypatch):
    """A run dir's config.json and a checkpoint's stored config naming os.system: resuming never calls it."""
    from songbloom.checkpoints.keys import TRAINING_CONFIG_KEY
    from songbloom.training.run import run

    calls = []
    monkeypatch.setattr(os, "system", lambda *a, **k: calls.append(a) or 0)
    base = [f"paths.root_dir={tmp_path}", *TINY_CPU, "export.enabled=false", "run_name=stored",
            "callbacks.checkpoint.every_n_steps=1"]
    first, objects = run(compose_config([*base, "trainer.max_steps=1"]))
    run_dir = Path(first["run_dir"])
    evil = {"_target_": "os.system", "command": f"touch {tmp_path / 'pwned'}"}
    stored = json.loads((run_dir / "config.json").read_text())
    stored["callbacks"]["evil"] = evil
    stored["logger"] = evil
    stored["data"] = {**stored["data"], "_target_": "os.system"}
    (run_dir / "config.json").write_text(json.dumps(stored))
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, weights_only=True)
    state[TRAINING_CONFIG_KEY] = {**state[TRAINING_CONFIG_KEY], "logger": evil, "callbacks": {"evil": evil}}
    torch.save(state, ckpt)

    again, _ = run(compose_config([*base, "trainer.max_steps=2", "allow_config_change=true"]))
    assert again["resumed_from"] and again["steps"] == 2.0
    assert calls == [] and not (tmp_path / "pwned").exists()


def test_run_stays_simple():
    """`run` and the typed config stay under ruff's C901 limit the project enables (max-complexity 12)."""
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.is_file():
        pytest.skip("ruff is not installed next to this interpreter")
    files = ["songbloom/training/run.py", "songbloom/config/run.py", "songbloom/training/instantiate.py"]
    proc = subprocess.run([str(ruff), "check", "--select", "C901", "--config", "lint.mccabe.max-complexity=12",
                           *files], cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
