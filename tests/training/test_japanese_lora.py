"""``experiment=japanese_lora`` against a local folder laid out like the release but holding a tiny random model.

Every adapter and every declared fully-trained tensor must get a nonzero gradient and move; every other base
tensor must be bit-identical after training.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from songbloom.config import SongBloomConfig
from songbloom.models.songbloom import SongBloomModel
from songbloom.training import run
from songbloom.training.initialisation import FULL_SETS
from songbloom.training.lora import is_adapter_param
from tests.training.conftest import TINY_CPU

RELEASE = "songbloom_full_150s"


def write_tiny_release(folder: Path) -> dict[str, torch.Tensor]:
    """The release file set (YAML, .pt, VAE json/ckpt, vocabulary) around a tiny random generator."""
    pytest.importorskip("songbloom.release.yaml_writer", reason="needs the release branch (songbloom.release)")
    from songbloom.checkpoint import save_release_checkpoint
    from songbloom.release.yaml_writer import write_release_yaml

    cfg = SongBloomConfig.from_name("tiny")
    torch.manual_seed(123)
    generator = SongBloomModel(cfg.model).state_dict()
    write_release_yaml(cfg, folder, yaml_name=f"{RELEASE}.yaml", pt_name=f"{RELEASE}.pt")
    save_release_checkpoint(folder / f"{RELEASE}.pt", generator, {"encoder.layers.0.weight": torch.zeros(2, 2)})
    (folder / "stable_audio_1920_vae.json").write_text("{}")  # training never reads the VAE files
    torch.save({}, folder / "autoencoder_music_dsp1920.ckpt")
    return {k: v.clone() for k, v in generator.items()}


def _base_name(name: str) -> str:
    return name.replace(".base_layer.", ".")


def test_japanese_lora_trains_exactly_the_declared_tensors(compose, tmp_path: Path):
    release_sd = write_tiny_release(tmp_path / "release")
    codebook = tmp_path / "codebook.safetensors"
    codebook.write_bytes(b"")  # only its presence is declared here; shards are stood in by synthetic data
    cfg = compose(
        [
            "experiment=japanese_lora",
            *TINY_CPU,
            f"init.release_dir={tmp_path / 'release'}",
            f"sketch.codebook_path={codebook}",
            "trainer.max_steps=3",
            "training.track_grad_coverage=true",
            "training.condition_dropout=false",
        ]
    )
    result = run(cfg)
    lit = result["_lit_module"]
    report = lit.trainable_report
    assert report["full_sets"] == ["sketch_embedding", "sketch_classifier", "lyric_embedding"]
    declared_full = {n for s in report["full_sets"] for n in FULL_SETS[s]}

    params = dict(lit.model.named_parameters())
    adapters = {n for n in params if is_adapter_param(n)}
    assert any(n.startswith("ar_transformer.") for n in adapters) and any(n.startswith("nar_dit.") for n in adapters)
    trainable = {n for n, p in params.items() if p.requires_grad}
    assert trainable == adapters | declared_full

    no_grad = sorted(trainable - lit.nonzero_grad_names)
    assert not no_grad, f"no nonzero gradient: {no_grad}"

    sd = lit.model.state_dict()
    for name, value in sd.items():
        if is_adapter_param(name):
            continue
        base = _base_name(name)
        before = release_sd[base]
        if base in declared_full:
            assert not torch.equal(value.float(), before.float()), f"{name} did not move"
        else:
            assert torch.equal(value, before), f"frozen base tensor {name} changed"
    for name in adapters:
        if ".lora_B." in name:  # starts at zero: must have moved
            assert params[name].detach().abs().sum() > 0, name

    # Adapter-only checkpoints: the frozen base is not stored (it comes back from the release on resume).
    ckpt = torch.load(Path(result["run_dir"]) / "checkpoints" / "last.ckpt", weights_only=True)
    stored = set(ckpt["state_dict"])
    assert {f"model.{n}" for n in trainable} <= stored
    assert not any(".base_layer." in k for k in stored)
