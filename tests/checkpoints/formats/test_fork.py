"""Checkpoints of the ayutaz/SongBloom fork: load through infer.py, convert to our export, report what mapped.

The fork's file is rebuilt here from its documented layout (spec seed_fork_training.md 1.6-1.7): a Lightning
checkpoint whose ``state_dict`` is the fork LightningModule's (``model.*`` generator, ``vae.vae.*`` VAE), with
targeted Linears wrapped as ``<name>.base`` + ``<name>.lora_A`` (r x in) + ``<name>.lora_B`` (out x r), and
the release YAML it trained with pickled as an OmegaConf ``DictConfig`` under ``hyper_parameters``.
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from songbloom.checkpoints.fork_file import looks_like_fork_checkpoint, read_fork_checkpoint
from songbloom.checkpoints.formats.fork import load_fork_checkpoint
from songbloom.checkpoints.registry import detect_checkpoint_format, load_checkpoint
from songbloom.checkpoints.release_state import LEGACY_VAE_PREFIX, save_release_checkpoint
from songbloom.checkpoints.release_yaml_writer import write_release_yaml
from songbloom.checkpoints.strict import CheckpointMismatchError
from songbloom.cli.infer import main as infer_main
from songbloom.config import SongBloomConfig
from songbloom.inference.fork_flags import fork_flag_notice
from songbloom.inference.generate import SamplingParams
from songbloom.models.songbloom import SongBloomModel
from songbloom.models.vae import OobleckVAE, VAEConfig

REPO = Path(__file__).resolve().parents[3]
RANK, ALPHA = 4, 32.0  # the fork's alpha default; scaling = alpha / rank = 8
MAX_DURATION = 1.0


class ForkStyleLoRA(nn.Module):
    """Same parameter names and function as the fork's wrapper: base(x) + B(A(x)) * alpha / r."""

    def __init__(self, base: nn.Linear, r: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.scaling = alpha / r
        self.lora_A = nn.Linear(base.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.lora_B(self.lora_A(x)) * self.scaling


def _wrap(module: nn.Module, targets: tuple[str, ...], prefix: str = "") -> list[str]:
    done = []
    for name, child in module.named_children():
        full = f"{prefix}.{name}" if prefix else name
        if isinstance(child, nn.Linear) and any(t in full for t in targets):
            setattr(module, name, ForkStyleLoRA(child, RANK, ALPHA))
            done.append(full)
        else:
            done += _wrap(child, targets, full)
    return done


def _fork_hparams(cfg: SongBloomConfig, tmp: Path) -> DictConfig:
    """The release YAML as the fork keeps it: interpolations unresolved, VAE paths into its download cache."""
    write_release_yaml(cfg, tmp, yaml_name="songbloom_full_150s.yaml", pt_name="songbloom_full_150s.pt")
    raw = OmegaConf.load(tmp / "songbloom_full_150s.yaml")
    raw.vae.vae_cfg = "/home/fork-user/cache/stable_audio_1920_vae.json"
    raw.vae.vae_ckpt = "/home/fork-user/cache/autoencoder_music_dsp1920.ckpt"
    raw.train = {"lr": 1e-4, "weight_decay": 0.01, "lambda_flow": 0.1, "warmup_steps": 0, "max_steps": 0}
    raw.train_dataset.text_key = "lyrics"
    raw.train_dataset.wav_key = "prompt_wav"
    return raw


def build_fork_checkpoint(directory: Path, *, targets=("q_proj", "v_proj", "to_qkv")) -> dict:
    """Write ``epoch=3-step=120.ckpt`` (+ the tiny VAE json beside it); returns what a test needs to check."""
    directory.mkdir(parents=True, exist_ok=True)
    cfg = SongBloomConfig.from_name("tiny")
    torch.manual_seed(0)
    model = SongBloomModel(cfg.model)
    with torch.no_grad():
        model.skeleton_classifier[-1].bias[cfg.model.eos_id] = -1e4  # no early EOS: output length is predictable
    plain = {k: v.clone() for k, v in model.state_dict().items()}
    wrapped = _wrap(model, targets)
    with torch.no_grad():  # trained adapters: B is no longer zero
        for m in model.modules():
            if isinstance(m, ForkStyleLoRA):
                m.lora_B.weight.normal_(0, 0.02)
    vae_cfg = VAEConfig.tiny()
    vae = OobleckVAE(vae_cfg)
    holder = nn.Module()  # the fork's SongBloom_PL: .model (MVSA_DiTAR) and .vae (StableVAE wrapping .vae)
    holder.model = model
    holder.vae = nn.Module()
    holder.vae.vae = vae
    hparams = _fork_hparams(cfg, directory / "_release_yaml")
    state = holder.state_dict()
    # the fork hands its VAE to the prompt conditioner too, so its state dict holds that second copy
    state.update({LEGACY_VAE_PREFIX + k: v for k, v in vae.state_dict().items()})
    ckpt = {
        "epoch": 3,
        "global_step": 120,
        "pytorch-lightning_version": "2.2.1",
        "state_dict": state,
        "loops": {"fit_loop": {"epoch_progress": {"current": {"completed": 3}}}},
        "callbacks": {"ModelCheckpoint{'monitor': 'train/loss'}": {"best_model_score": torch.tensor(6.3)}},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]}],
        "lr_schedulers": [],
        "hyper_parameters": hparams,
        "hparams_type": DictConfig,
    }
    path = directory / "epoch=3-step=120.ckpt"
    torch.save(ckpt, path)
    vae_cfg.to_json(directory / "stable_audio_1920_vae.json")
    merged = dict(plain)
    for name in wrapped:
        m = model.get_submodule(name)
        merged[name + ".weight"] = m.base.weight + m.scaling * m.lora_B.weight @ m.lora_A.weight
    return {"path": path, "cfg": cfg, "wrapped": wrapped, "merged": merged, "model": model, "vae": vae}


@pytest.fixture(scope="module")
def fork(tmp_path_factory) -> dict:
    return build_fork_checkpoint(tmp_path_factory.mktemp("fork") / "checkpoints")


def _prompt_jsonl(tmp: Path) -> Path:
    wav = (0.1 * np.sin(np.linspace(0, 900, 48000))).astype(np.float32)
    sf.write(tmp / "prompt.wav", wav, 48000)
    jsonl = tmp / "test_ja.jsonl"
    jsonl.write_text(
        json.dumps({"idx": "ja1", "lyrics": "[verse] かえる の うた . , [chorus] た ぬ き", "prompt_wav": "prompt.wav"})
        + "\n",
        encoding="utf-8",
    )
    return jsonl


def test_detection_and_safe_read(fork, tmp_path):
    path = fork["path"]
    assert looks_like_fork_checkpoint(path)
    assert detect_checkpoint_format(path).name == "fork_ckpt"
    with pytest.raises(pickle.UnpicklingError):  # the plain safe load refuses the pickled DictConfig ...
        torch.load(path, weights_only=True)
    ck = read_fork_checkpoint(path)  # ... ours allows exactly the OmegaConf classes
    assert ck.global_step == 120 and ck.hparams["model"]["dim"] == 64
    assert ck.hparams["model"]["condition_provider_cfg"]["lyrics"]["vocab_list"].startswith("${load_yaml:")
    # a release .pt of ours is not mistaken for a fork checkpoint
    cfg = SongBloomConfig.from_name("tiny")
    save_release_checkpoint(tmp_path / "x.pt", SongBloomModel(cfg.model).state_dict(), {})
    assert not looks_like_fork_checkpoint(tmp_path / "x.pt")
    # any other pickled object is still refused, with a message that says why
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "pytorch-lightning_version": "2", "x": argparse.Namespace(a=1)}, evil)
    with pytest.raises(ValueError, match="refuse to unpickle"):
        read_fork_checkpoint(evil)


def test_lora_merged_with_the_fork_scaling(fork, tmp_path):
    bundle, report = load_fork_checkpoint(fork["path"], report_path=tmp_path / "r.json")
    n_layers = fork["cfg"].model.lm_layers
    assert len(fork["wrapped"]) == 3 * n_layers  # q_proj, v_proj (AR) and to_qkv (DiT) per layer
    assert report.ok and report.counts()["merged_lora"] == 3 * n_layers
    assert {a.rank for a in report.merged_lora} == {RANK}
    assert {a.scaling for a in report.merged_lora} == {ALPHA / RANK}
    sd = bundle.model.state_dict()
    for k, v in fork["merged"].items():
        torch.testing.assert_close(sd[k], v, rtol=0, atol=1e-6)
    # function check: the merged Linear equals the fork's wrapper (which the fork ran at inference)
    name = fork["wrapped"][0]
    x = torch.randn(3, fork["cfg"].model.dim)
    with torch.no_grad():
        torch.testing.assert_close(bundle.model.get_submodule(name)(x), fork["model"].get_submodule(name)(x))
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["counts"]["missing"] == 0 and saved["counts"]["unmapped"] == 0
    assert saved["counts"]["mapped"] == len(sd) + len(bundle.vae.state_dict())
    assert saved["config_source"] == "checkpoint hyper_parameters"
    assert any("vocab" in n for n in saved["notes"])
    # a different alpha changes the merge (the fork does not store it, so it must be honoured when given)
    other, _ = load_fork_checkpoint(fork["path"], lora_alpha=8.0, report_path=tmp_path / "r2.json")
    assert not torch.equal(other.model.state_dict()[name + ".weight"], sd[name + ".weight"])


def test_infer_py_generates_from_fork_ckpt(fork, tmp_path, monkeypatch, caplog):
    jsonl = _prompt_jsonl(tmp_path)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    argv = ["--input-jsonl", str(jsonl), "--ckpt-path", str(fork["path"]), "--output-dir", str(out)]
    argv += ["--use-lora", "--lora-rank", "16", "--lora-target-modules", "q_proj,v_proj", "--n-samples", "1"]
    argv += ["--seed", "0", "--device", "cpu", "--max-duration", str(MAX_DURATION), "--output-format", "wav"]
    with caplog.at_level("WARNING"):
        assert infer_main(argv) == 0
    assert "--use-lora" in caplog.text and "read from the checkpoint" in caplog.text
    p = fork["cfg"].model.block_size
    expected = SamplingParams(max_frames=MAX_DURATION * fork["cfg"].frame_rate).max_patches(p) * p * 1920
    audio, sr = sf.read(out / "ja1_s0.wav", always_2d=True)
    assert sr == 48000 and audio.shape == (expected, 2)
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0
    report = json.loads(fork["path"].with_name(fork["path"].name + ".mapping.json").read_text())
    assert report["ok"] and report["counts"]["merged_lora"] == len(fork["wrapped"])


def _convert_script():
    import songbloom.cli.convert_fork_checkpoint as mod

    return mod


def test_convert_to_export_loads_strictly(fork, tmp_path, capsys):
    out = tmp_path / "export"
    assert _convert_script().main([str(fork["path"]), str(out), "--name", "ja_lora"]) == 0
    assert "merged_lora 6" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [
            "ja_lora.pt",
            "ja_lora.yaml",
            "stable_audio_1920_vae.json",
            "autoencoder_music_dsp1920.ckpt",
            "vocab_g2p.yaml",
            "migration_report.json",
        ]
    )
    assert detect_checkpoint_format(out).name == "release_dir"
    bundle = load_checkpoint(out)  # release_dir: strict generator + VAE load
    sd = bundle.model.state_dict()
    for k, v in fork["merged"].items():
        torch.testing.assert_close(sd[k], v, rtol=0, atol=1e-6)
    for k, v in fork["vae"].state_dict().items():
        assert torch.equal(bundle.vae.state_dict()[k], v)
    report = json.loads((out / "migration_report.json").read_text())
    assert report["ok"] and report["counts"]["renamed"] == len(fork["wrapped"])
    assert math.isclose(report["merged_lora"][0]["scaling"], ALPHA / RANK)
    assert report["licences"] and all(r["licence"] == "unknown" for r in report["licences"])
    assert report["counts"]["dropped"] == len(fork["vae"].state_dict())  # the release-era VAE copy


def test_unmapped_and_missing_keys_are_reported(fork, tmp_path):
    ck = _load_fork_file(fork["path"])  # to edit it
    sd = ck["state_dict"]
    sd["model.some_new_head.weight"] = torch.zeros(2)
    first = fork["wrapped"][0]
    del sd[f"model.{first}.lora_B.weight"]
    del sd["model.skeleton_emb.weight"]
    bad = tmp_path / "bad.ckpt"
    torch.save(ck, bad)
    (tmp_path / "stable_audio_1920_vae.json").write_text(
        (fork["path"].parent / "stable_audio_1920_vae.json").read_text()
    )
    with pytest.raises(CheckpointMismatchError, match="could not be mapped") as err:
        load_fork_checkpoint(bad)
    assert "model.some_new_head.weight" in err.value.unexpected
    assert "model.skeleton_emb.weight" in err.value.missing
    report = json.loads((tmp_path / "bad.ckpt.mapping.json").read_text())
    assert report["unmapped"][f"model.{first}.lora_A.weight"] == "adapter half without its partner"
    assert report["counts"]["missing"] == 1 and report["counts"]["unmapped"] == 2


def test_fork_flags_notice():
    ns = argparse.Namespace(
        use_lora=False, lora_rank=None, lora_alpha=None, lora_dropout=None, lora_target_modules=None
    )
    assert fork_flag_notice(ns) is None
    ns.use_lora, ns.lora_alpha = True, 16.0
    text = fork_flag_notice(ns)
    assert "--use-lora" in text and "--lora-alpha 16" in text


def test_checkpoint_without_stored_settings_needs_config(fork, tmp_path):
    ck = _load_fork_file(fork["path"])  # to edit it
    del ck["hyper_parameters"], ck["hparams_type"]
    raw = tmp_path / "ckpts" / "last.ckpt"
    raw.parent.mkdir()
    torch.save(ck, raw)
    (raw.parent / "stable_audio_1920_vae.json").write_text(
        (fork["path"].parent / "stable_audio_1920_vae.json").read_text()
    )
    with pytest.raises(FileNotFoundError, match="--config X.yaml"):
        load_checkpoint(raw)
    yaml_path = fork["path"].parent / "_release_yaml" / "songbloom_full_150s.yaml"
    bundle = load_checkpoint(raw, config_path=yaml_path)
    name = fork["wrapped"][0] + ".weight"
    torch.testing.assert_close(bundle.model.state_dict()[name], fork["merged"][name], rtol=0, atol=1e-6)
    report = json.loads((raw.parent / "last.ckpt.mapping.json").read_text())
    assert report["config_source"] == str(yaml_path)


def test_export_script_accepts_the_fork_checkpoint(fork, tmp_path):
    """scripts/export.py reads through the checkpoint registry, so the fork's .ckpt exports like any other."""
    from songbloom.cli.export import main as export_main

    out = tmp_path / "exported"
    assert export_main(["export", str(fork["path"]), "--out", str(out), "--formats", "release", "merged"]) == 0
    release = load_checkpoint(out / "release")
    merged = load_checkpoint(out / "merged")
    for bundle in (release, merged):
        sd = bundle.model.state_dict()
        for k, v in fork["merged"].items():
            torch.testing.assert_close(sd[k], v, rtol=0, atol=1e-6)


def _load_fork_file(path):
    """The whole fork checkpoint, with the same OmegaConf allow-list the loader uses (still weights_only)."""
    from songbloom.checkpoints.fork_file import _omegaconf_safe_globals

    with torch.serialization.safe_globals(_omegaconf_safe_globals()):
        return torch.load(path, weights_only=True)
