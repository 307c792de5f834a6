"""Apple MPS device logic, exercised on CPU with ``torch.backends.mps.is_available`` mocked."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from songbloom.building import devices
from songbloom.building.devices import (
    MUQ_ON_MPS_NOTICE,
    DeviceUnavailableError,
    prepare_training_accelerator,
    preprocessing_devices,
    resolve_inference_devices,
    vae_device_for,
)
from songbloom.utils.mps_env import FALLBACK_ENV, set_mps_fallback_env_from_argv, wants_mps

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake_mps(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setenv(FALLBACK_ENV, "")  # records the original state, restored after the test
    monkeypatch.delenv(FALLBACK_ENV)


@pytest.fixture
def no_mps(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def _probe_ok(device):
    return None


def _probe_missing_op(device):
    raise NotImplementedError("The operator 'aten::_weight_norm_interface' is not currently implemented for MPS")


def test_inference_on_mps_forces_float32_and_keeps_vae_when_ops_exist(fake_mps, caplog):
    with caplog.at_level(logging.WARNING, logger="songbloom.building.devices"):
        plan = resolve_inference_devices("mps", torch.bfloat16, vae_probe=_probe_ok)
    assert plan.device.type == "mps" and plan.vae_device.type == "mps" and plan.dtype == torch.float32
    assert any("float32 only" in n for n in plan.notes)
    # the process started without the fallback: say so, and turn it on for worker processes
    assert FALLBACK_ENV in caplog.text and "Restart with" in caplog.text
    assert os.environ[FALLBACK_ENV] == "1"


def test_vae_moves_to_cpu_when_mps_lacks_an_op(fake_mps, monkeypatch):
    monkeypatch.setenv(FALLBACK_ENV, "1")
    plan = resolve_inference_devices("mps", torch.float32, vae_probe=_probe_missing_op)
    assert plan.device.type == "mps" and plan.vae_device == torch.device("cpu")
    assert any("VAE runs on the CPU" in n and "weight_norm" in n for n in plan.notes)
    assert not any("Restart with" in n for n in plan.notes)  # fallback already on
    assert vae_device_for(torch.device("cpu"), _probe_missing_op) == (torch.device("cpu"), None)  # probe only on MPS


def test_unavailable_mps_is_a_clear_error(no_mps):
    with pytest.raises(DeviceUnavailableError, match="MPS is not available.*use --device cpu"):
        resolve_inference_devices("mps")
    with pytest.raises(DeviceUnavailableError, match="trainer=cpu"):
        prepare_training_accelerator({"accelerator": "mps"})
    with pytest.raises(DeviceUnavailableError):
        preprocessing_devices("mps")


def test_cpu_and_default_paths_are_unchanged(no_mps):
    plan = resolve_inference_devices("cpu", torch.bfloat16)
    assert plan.device == plan.vae_device == torch.device("cpu") and plan.dtype == torch.bfloat16 and not plan.notes
    if not torch.cuda.is_available():
        assert resolve_inference_devices(None).device == torch.device("cpu")  # MPS only when asked for
    cfg = {"accelerator": "cpu", "precision": "bf16-mixed"}
    assert prepare_training_accelerator(cfg) == [] and cfg["precision"] == "bf16-mixed"
    assert preprocessing_devices("cpu") == ("cpu", "cpu", [])


def test_training_and_preprocessing_on_mps(fake_mps, caplog):
    cfg = {"accelerator": "mps", "precision": "bf16-mixed"}
    notes = prepare_training_accelerator(cfg)
    assert cfg["precision"] == "32-true" and any("float32 only" in n for n in notes)
    with caplog.at_level(logging.WARNING, logger="songbloom.building.devices"):
        vae_dev, muq_dev, notes = preprocessing_devices("mps")
    assert (vae_dev, muq_dev) == ("mps", "cpu") and MUQ_ON_MPS_NOTICE in notes
    assert "complex-valued STFT" in caplog.text


def test_cli_reports_missing_mps(no_mps):
    from songbloom.cli.infer import _pick_device

    with pytest.raises(SystemExit, match="MPS is not available"):
        _pick_device("mps", torch.float32)


def test_entry_scripts_set_the_fallback_before_torch():
    assert wants_mps(["--device", "mps"]) and wants_mps(["--device=mps"]) and wants_mps(["trainer=mps"])
    assert wants_mps(["trainer.accelerator=mps"]) and not wants_mps(["--device", "cpu", "mps.txt"])
    env: dict[str, str] = {}
    assert set_mps_fallback_env_from_argv(["--device", "mps"], env) and env[FALLBACK_ENV] == "1"
    env = {FALLBACK_ENV: "0"}  # the user's own choice stays
    assert not set_mps_fallback_env_from_argv(["--device", "mps"], env) and env[FALLBACK_ENV] == "0"
    # infer.py really sets it before importing torch (read at import time): check in a fresh interpreter
    code = (
        # a missing --input-jsonl stops the run right after torch is imported (--help would not import it)
        "import os, sys, runpy; sys.argv = ['infer.py', '--device', 'mps', '--input-jsonl', 'missing.jsonl'];\n"
        "import builtins; real = builtins.__import__\n"
        "def guard(name, *a, **k):\n"
        "    if name == 'torch' and 'torch' not in sys.modules:\n"
        f"        print('ENV_AT_TORCH_IMPORT', os.environ.get('{FALLBACK_ENV}'))\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = guard\n"
        "try:\n    runpy.run_path('infer.py', run_name='__main__')\nexcept SystemExit:\n    pass\n"
    )
    env_clean = {k: v for k, v in os.environ.items() if k != FALLBACK_ENV}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, env=env_clean)
    assert "ENV_AT_TORCH_IMPORT 1" in out.stdout, out.stdout + out.stderr


def test_module_exports():
    assert devices.FALLBACK_ENV == FALLBACK_ENV
