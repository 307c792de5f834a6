"""One tiny ``japanese_lora`` run shared by the export tests (module scope), on a release-like folder.

The folder holds a tiny random generator *and* a real tiny VAE, so every export can be decoded to audio.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from songbloom.checkpoints.registry import load_checkpoint
from songbloom.checkpoints.release_state import save_release_checkpoint
from songbloom.config import SongBloomConfig
from songbloom.models.songbloom import SongBloomModel
from songbloom.models.vae import OobleckVAE, VAEConfig
from tests.training.conftest import TINY_CPU, compose_config

RELEASE = "songbloom_full_150s"
TRAIN_STEPS = 3


def write_tiny_release_with_vae(folder: Path, **model_overrides) -> Path:
    """The release file set (YAML, .pt, VAE json/ckpt, vocabulary) of a tiny random generator and VAE."""
    from songbloom.checkpoints.release_yaml_writer import write_release_yaml

    cfg = SongBloomConfig.from_name("tiny", **model_overrides)
    torch.manual_seed(123)
    model = SongBloomModel(cfg.model)
    with torch.no_grad():
        model.skeleton_classifier[-1].bias[cfg.model.eos_id] = -1e4  # no early EOS: song lengths are predictable
    vae_cfg = VAEConfig.tiny()
    vae = OobleckVAE(vae_cfg)
    write_release_yaml(cfg, folder, yaml_name=f"{RELEASE}.yaml", pt_name=f"{RELEASE}.pt")
    save_release_checkpoint(folder / f"{RELEASE}.pt", model.state_dict(), vae.state_dict())
    vae_cfg.to_json(folder / "stable_audio_1920_vae.json")
    torch.save({"state_dict": vae.state_dict()}, folder / "autoencoder_music_dsp1920.ckpt")
    return folder


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory) -> dict:
    """``experiment=japanese_lora`` for a few steps with EMA, adapter-only checkpoints and the run-end export."""
    from tests.training.conftest import run_flat

    root = tmp_path_factory.mktemp("export_run")
    release = write_tiny_release_with_vae(root / "release")
    codebook = root / "codebook.safetensors"
    codebook.write_bytes(b"")  # declared only: synthetic data stands in for the shards
    cfg = compose_config(
        [
            f"paths.root_dir={root}",
            "experiment=japanese_lora",
            *TINY_CPU,
            f"init.release_dir={release}",
            f"sketch.codebook_path={codebook}",
            f"trainer.max_steps={TRAIN_STEPS}",
            "training.condition_dropout=false",
            "training.ema=true",
            "training.ema_decay=0.5",
            "training.optim.lr=3e-3",
            "run_name=lora",
        ]
    )
    result = run_flat(cfg)
    result["release_dir"] = release
    result["root"] = root
    return result


@pytest.fixture(scope="module")
def paths(lora_run) -> dict[str, Path]:
    run_dir = Path(lora_run["run_dir"])
    return {
        "lightning_ckpt": run_dir / "checkpoints" / "last.ckpt",
        "release_dir": run_dir / "export" / "release",
        "release_pt": run_dir / "export" / "release" / "lora.pt",
        "songbloom_export": run_dir / "export",
        "peft_adapter": run_dir / "export" / "peft_adapter",
        "base": lora_run["release_dir"],
    }


@pytest.fixture(scope="module")
def bundles(paths) -> dict:
    return {
        name: load_checkpoint(paths[name])
        for name in ("lightning_ckpt", "release_dir", "songbloom_export", "peft_adapter")
    }
