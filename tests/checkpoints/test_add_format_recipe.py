"""docs/architecture.md's recipe for a new checkpoint format, followed to the letter on a copy of the package.

One new module in ``songbloom/checkpoints/formats/`` and one entry in ``BUILTIN_FORMATS``; then ``infer.py``
generates from a file of that format without any other change.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import soundfile as sf
import torch
from safetensors.torch import save_file

from songbloom.config import SongBloomConfig
from songbloom.models.songbloom import SongBloomModel
from songbloom.models.vae import OobleckVAE, VAEConfig

REPO = Path(__file__).resolve().parents[2]

NEW_FORMAT = '''"""One safetensors file: the generator, the VAE and both configs (made by the recipe test)."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_file

from songbloom.checkpoints.bundle import SongBloom
from songbloom.checkpoints.registry import CheckpointFormat, LoadOptions
from songbloom.checkpoints.strict import strict_load
from songbloom.config import SongBloomConfig
from songbloom.models.songbloom import SongBloomModel
from songbloom.models.vae import OobleckVAE, VAEConfig


def _detect(path: Path) -> bool:
    return path.is_file() and path.name.endswith(".songbloom.safetensors")


def _load(path: Path, opts: LoadOptions) -> SongBloom:
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    cfg = SongBloomConfig.from_dict(json.loads(meta["songbloom"]))
    tensors = load_file(str(path))
    model = SongBloomModel(cfg.model)
    strict_load(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, what=f"generator from {path}")
    vae = OobleckVAE(VAEConfig.from_dict(json.loads(meta["vae"])))
    strict_load(vae, {k[4:]: v for k, v in tensors.items() if k.startswith("vae.")}, what=f"VAE from {path}")
    return SongBloom._finish(cfg, model, vae, opts.device, opts.dtype)


FORMAT = CheckpointFormat("single_file", "one .songbloom.safetensors file (generator + VAE + configs)", _detect, _load)
'''


def _add_format(package: Path) -> None:
    """The recipe: the new module, then one entry in BUILTIN_FORMATS (and the module on the import line)."""
    (package / "checkpoints" / "formats" / "single_file.py").write_text(NEW_FORMAT)
    registry = package / "checkpoints" / "formats" / "__init__.py"
    text = registry.read_text()
    text, n_import = re.subn(
        r"^from songbloom\.checkpoints\.formats import (.+)$",
        r"from songbloom.checkpoints.formats import \1, single_file",
        text,
        count=1,
        flags=re.M,
    )
    text, n_entry = re.subn(r"(BUILTIN_FORMATS[^=]*= \(\n)", r"\1    single_file.FORMAT,\n", text, count=1)
    assert n_import == 1 and n_entry == 1, "docs/architecture.md's recipe no longer matches formats/__init__.py"
    registry.write_text(text)


def _write_single_file(path: Path) -> None:
    cfg = SongBloomConfig.from_name("tiny")
    torch.manual_seed(0)
    model = SongBloomModel(cfg.model)
    with torch.no_grad():
        model.skeleton_classifier[-1].bias[cfg.model.eos_id] = -1e4  # no early EOS: a predictable length
    vae_cfg = VAEConfig.tiny()
    vae = OobleckVAE(vae_cfg)
    tensors = {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
    tensors |= {f"vae.{k}": v.contiguous() for k, v in vae.state_dict().items()}
    meta = {"songbloom": json.dumps(cfg.to_dict()), "vae": json.dumps(vae_cfg.to_dict())}
    save_file(tensors, str(path), metadata=meta)


def test_recipe_adds_a_format_that_infer_py_loads(tmp_path):
    assert "BUILTIN_FORMATS" in (REPO / "docs" / "architecture.md").read_text()
    root = tmp_path / "checkout"
    shutil.copytree(REPO / "songbloom", root / "songbloom", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "infer.py", root / "infer.py")
    _add_format(root / "songbloom")
    ckpt = tmp_path / "song.songbloom.safetensors"
    _write_single_file(ckpt)
    jsonl = tmp_path / "in.jsonl"
    prompt = tmp_path / "prompt.wav"
    sf.write(str(prompt), (0.1 * torch.randn(48000 * 2, 2)).numpy(), 48000)
    jsonl.write_text(json.dumps({"idx": "recipe", "lyrics": "[verse] n i h ao", "prompt_wav": str(prompt)}) + "\n")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run(
        [sys.executable, "infer.py", "--input-jsonl", str(jsonl), "--ckpt-path", str(ckpt), "--output-dir", str(out),
         "--device", "cpu", "--max-duration", "1.0", "--log-level", "INFO"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "single_file" in proc.stderr + proc.stdout  # the registry said which format it detected
    wavs = sorted(out.rglob("*.wav")) + sorted(out.rglob("*.flac"))
    assert wavs, f"no audio written: {sorted(p.name for p in out.rglob('*'))}"
    audio, sr = sf.read(str(wavs[0]))
    assert sr == 48000 and len(audio) > 0
