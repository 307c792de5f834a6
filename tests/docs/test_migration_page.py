"""Every shell command in docs/migration.md runs here, on tiny stand-ins, so the page cannot rot.

Commands are read from the page's ``bash`` fences. Each must have a handler below (an unknown command fails);
a handler may append CPU/tiny-size flags, as the docs harness does, and checks what the page promises.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from songbloom.building import devices
from tests.checkpoints.formats.test_fork import build_fork_checkpoint
from tests.data.test_jacappella import make_layout

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "migration.md"
TINY_INFER = ["--device", "cpu", "--max-duration", "1", "--n-samples", "1", "--seed", "0", "--log-level", "WARNING"]


def doc_commands(path: Path) -> list[str]:
    """Logical lines of the ``bash`` fences (continuations joined, comments and blanks dropped)."""
    out, fence, pending = [], None, ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        s = raw.strip()
        if s.startswith("```"):
            fence = s[3:].strip() if fence is None else None
            continue
        if fence != "bash" or not s or s.startswith("#"):
            continue
        pending += s[:-1] + " " if s.endswith("\\") else s
        if not s.endswith("\\"):
            out.append(" ".join(pending.split()))
            pending = ""
    return out


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _infer(argv: list[str]) -> int:
    from songbloom.cli.infer import main

    extra = [a for a in TINY_INFER if a != "--device" and a != "cpu"] if "--device" in argv else TINY_INFER
    return main(argv + extra)


def _train(argv: list[str], root: Path):
    from tests.training.conftest import compose_config, run_flat

    return run_flat(compose_config([f"paths.root_dir={root}", *argv]))


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_TOKEN", "hf_doc_test")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # No Apple GPU here (patched in our module: torch._dynamo, imported by Lightning, inspects torch's own function).
    monkeypatch.setattr(devices, "mps_available", lambda: False)
    build_fork_checkpoint(tmp_path / "checkpoints")
    (tmp_path / "checkpoints" / "epoch=3-step=120.ckpt").rename(tmp_path / "checkpoints" / "last.ckpt")
    wav = (0.1 * np.sin(np.linspace(0, 900, 48000))).astype(np.float32)
    sf.write(tmp_path / "prompt.wav", wav, 48000)
    line = {"idx": "ja1", "lyrics": "[verse] かえる の うた . , [chorus] た ぬ き", "prompt_wav": "prompt.wav"}
    (tmp_path / "my_songs.jsonl").write_text(json.dumps(line) + "\n", encoding="utf-8")
    return tmp_path


def test_every_command_of_the_migration_page_runs(sandbox, monkeypatch, caplog):
    import huggingface_hub

    downloads = []

    def fake_snapshot_download(**kw):
        downloads.append(kw)
        make_layout(Path(kw["local_dir"]))
        return kw["local_dir"]

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    commands = doc_commands(DOC)
    assert len(commands) == 8, commands
    for cmd in commands:
        words = shlex.split(os.path.expandvars(cmd))
        assert words[0] == "python", cmd
        script, argv = words[1], words[2:]
        caplog.clear()
        if script == "infer.py" and "--device" in argv and "mps" in argv:
            with pytest.raises(SystemExit, match="MPS is not available"):
                _infer(argv)
        elif script == "infer.py":
            assert _infer(argv) == 0, cmd
            assert (sandbox / "out" / "ja1_s0.flac").is_file()
            if "--use-lora" in argv:
                assert "no longer needed" in caplog.text
            if "checkpoints/last.ckpt" in argv:
                assert json.loads((sandbox / "checkpoints" / "last.ckpt.mapping.json").read_text())["ok"]
            (sandbox / "out" / "ja1_s0.flac").unlink()
        elif script == "scripts/convert_fork_checkpoint.py":
            assert _script("convert_fork_checkpoint").main(argv) == 0
            assert (sandbox / "exports" / "ja_lora" / "ja_lora.pt").is_file()
        elif script == "scripts/convert_jacappella.py":
            assert _script("convert_jacappella").main(argv) == 0
            if "--download" in argv:
                assert downloads[-1]["token"] == "hf_doc_test"
            report = json.loads((sandbox / "data/ja/songs.jsonl.report.json").read_text(encoding="utf-8"))
            assert report["counts"]["scat_only"] == 1 and report["counts"]["kept"] == 2
        elif script == "train.py":
            from songbloom.building.devices import DeviceUnavailableError

            with pytest.raises(DeviceUnavailableError, match="trainer.accelerator=mps"):
                _train(argv, sandbox)
        else:
            pytest.fail(f"docs/migration.md: no handler for `{cmd}`: add one here")
    assert len(downloads) == 1
