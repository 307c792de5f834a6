"""From one tiny ``japanese_lora`` run: the training checkpoint, the release-format export, the merged export
and base + PEFT adapter are the same model (teacher-forced outputs and replayed generation agree)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from songbloom.checkpoints.formats.peft_adapter import merge_peft_adapter
from songbloom.checkpoints.registry import detect_checkpoint_format, load_checkpoint
from songbloom.checkpoints.release_keys import load_reference_keys
from songbloom.checkpoints.release_state import read_release_checkpoint
from songbloom.checkpoints.strict import strict_load
from songbloom.cli.export import main as export_main
from songbloom.config import SongBloomConfig
from songbloom.inference.generate import GenerationHooks, SamplingParams, encode_cfg_conditions, generate
from songbloom.models.songbloom import SongBloomModel
from songbloom.models.vae import OobleckVAE, VAEConfig
from tests.checkpoints.formats.conftest import write_tiny_release_with_vae

TF_TOL = 1e-4  # merge rounding: W + B@A*s once vs. the adapter applied at every forward
GEN_TOL = 1e-4
MAX_DURATION = 1.0


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread):
    """Tiny models in this module run on one torch thread (see tests/conftest.py)."""


def _batch(cfg: SongBloomConfig, seed: int = 7):
    m = cfg.model
    g = torch.Generator().manual_seed(seed)
    b, frames = 2, 4 * m.block_size
    x_len = torch.tensor([frames, 2 * m.block_size])
    sketch = torch.randint(0, m.num_pitch, (b, frames), generator=g)
    latent = torch.randn(b, m.latent_dim, frames, generator=g)
    for i, n in enumerate(x_len.tolist()):
        sketch[i, n:] = m.eos_id
        latent[i, :, n:] = 0
    lyrics = [torch.randint(1, len(m.lyric_vocab), (10,), generator=g).tolist() for _ in range(b)]
    prompt = torch.randn(b, m.latent_dim, 8, generator=g)
    n_patches = int(x_len.sum()) // m.block_size
    noise = torch.randn(n_patches, m.block_size, m.latent_dim, generator=g)
    t = torch.rand(n_patches, generator=g)
    return sketch, latent, x_len, lyrics, prompt, noise, t


@torch.no_grad()
def _teacher_forced(model, cfg):
    sketch, latent, x_len, lyrics, prompt, noise, t = _batch(cfg)
    cond = model.encode_conditions(lyrics, prompt)
    out = model(sketch, latent, x_len, cond, noise=noise, t=t)
    return out.ar_logit, out.nar_pred


def _fully_trained(adapter_dir: Path, keys) -> set[str]:
    """The tensors an adapter directory carries in full (peft ``modules_to_save``)."""
    modules = json.loads((adapter_dir / "adapter_config.json").read_text())["modules_to_save"]
    return {k for k in keys if any(k.startswith(m + ".") for m in modules)}


def _maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a.float() - b.float()).abs().max())


def test_run_end_export_writes_every_format(lora_run, paths):
    assert lora_run["steps"] == 3
    for key in ("export_generator", "export_release_dir", "export_peft_adapter"):
        assert key in lora_run, sorted(lora_run)
    ckpt = torch.load(paths["lightning_ckpt"], weights_only=True)
    assert ckpt.get("songbloom_frozen_base_dropped", 0) > 0  # adapter-only: the base must come from the release
    assert "songbloom_ema" in ckpt and ckpt["songbloom_ema"]["num_updates"] == 3
    expected = {
        "lightning_ckpt": "lightning_ckpt",
        "release_dir": "release_dir",
        "release_pt": "release_pt",
        "songbloom_export": "songbloom_export",
        "peft_adapter": "peft_adapter",
    }
    for name, fmt in expected.items():
        assert detect_checkpoint_format(paths[name]).name == fmt, name
    adapter_cfg = json.loads((paths["peft_adapter"] / "adapter_config.json").read_text())
    assert (
        adapter_cfg["peft_type"] == "LORA" and Path(adapter_cfg["base_model_name_or_path"]) == paths["base"].resolve()
    )
    assert sorted(adapter_cfg["modules_to_save"]) == sorted(
        [
            "skeleton_emb",
            "skeleton_classifier.0",
            "skeleton_classifier.2",
            "condition_provider.conditioners.lyrics.output_proj",
        ]
    )


def test_teacher_forced_outputs_agree(bundles):
    ref_logit, ref_pred = _teacher_forced(bundles["lightning_ckpt"].model, bundles["lightning_ckpt"].config)
    for name, bundle in bundles.items():
        logit, pred = _teacher_forced(bundle.model, bundle.config)
        assert _maxdiff(logit, ref_logit) <= TF_TOL, name
        assert _maxdiff(pred, ref_pred) <= TF_TOL, name


def test_ema_weights_are_exported(lora_run, bundles):
    """The run kept an EMA (decay 0.5): the exports hold it, not the live weights of the last step."""
    lit = lora_run["_lit_module"]
    live = dict(lit.model.named_parameters())["skeleton_emb.weight"].detach()
    shadow = lit.ema.shadow["skeleton_emb.weight"]
    assert not torch.allclose(live, shadow)
    exported = dict(bundles["release_dir"].model.named_parameters())["skeleton_emb.weight"]
    assert torch.equal(exported, shadow)


def _replay_generation(bundle, recorded: dict | None):
    cfg = bundle.config
    model = bundle.model
    g = torch.Generator().manual_seed(11)
    lyrics = [torch.randint(1, len(cfg.model.lyric_vocab), (12,), generator=g).tolist()]
    prompt = torch.randn(1, cfg.model.latent_dim, 8, generator=g)
    params = SamplingParams.from_inference_config(cfg.inference, 3 * cfg.model.block_size + 1)
    tokens: dict[int, torch.Tensor] = {} if recorded is None else recorded
    draw = torch.Generator().manual_seed(5)

    def token_sampler(rec, probs):
        if recorded is None:
            tokens[rec.step] = torch.multinomial(probs.float(), 1, generator=draw).squeeze(-1)
        return tokens[rec.step]

    def dit_noise(patch, rows, shape, dtype, device):
        return torch.randn(shape, generator=torch.Generator().manual_seed(1000 + patch)).to(device, dtype)

    with torch.inference_mode():
        cond, null = encode_cfg_conditions(model, lyrics, prompt)
        song = generate(
            model, cond, null, params, hooks=GenerationHooks(token_sampler=token_sampler, dit_noise=dit_noise)
        )[0]
    return song, tokens


def test_replayed_generation_agrees(bundles):
    ref, tokens = _replay_generation(bundles["lightning_ckpt"], None)
    assert ref.num_frames > 0 and len(tokens) > 0
    for name, bundle in bundles.items():
        song, _ = _replay_generation(bundle, tokens)
        assert torch.equal(song.tokens, ref.tokens), name
        assert _maxdiff(song.release_latent(), ref.release_latent()) <= GEN_TOL, name


def _pattern(key: str) -> str:
    return re.sub(r"\.\d+\.", ".#.", key)


def test_release_export_loads_strictly_into_fresh_modules(paths, shared_dir):
    pt = paths["release_pt"]
    raw = torch.load(pt, weights_only=True)
    assert all(k.startswith(("model.", "vae.vae.")) for k in raw)
    assert not any(k.startswith("model.condition_provider.conditioners.prompt_wav.tokenizer.") for k in raw)
    # The official loader's key set: the same key names as the release (layer counts aside).
    reference = load_reference_keys(shared_dir / "reference" / "release_keys_full.json")
    assert {_pattern(k) for k in raw} == {_pattern(k) for k in reference}

    cfg = SongBloomConfig.from_release_yaml(paths["release_dir"] / "lora.yaml")
    generator, vae_sd, report = read_release_checkpoint(pt)
    assert report.vae_source == "vae.vae"
    strict_load(SongBloomModel(cfg.model), generator, what="exported generator")
    strict_load(OobleckVAE(VAEConfig.from_json(cfg.vae_config_path)), vae_sd, what="exported VAE")
    fresh = SongBloomModel(
        SongBloomConfig.from_dict(
            json.loads((paths["songbloom_export"] / "config.json").read_text())["songbloom"]
        ).model
    )
    strict_load(fresh, load_file(str(paths["songbloom_export"] / "generator.safetensors")), what="merged export")
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, generator[k]), k


def test_peft_loads_the_adapter_itself(paths, bundles):
    from peft import PeftModel

    base = load_checkpoint(paths["base"]).model
    peft_model = PeftModel.from_pretrained(base, str(paths["peft_adapter"]))
    logit, pred = _teacher_forced(peft_model.get_base_model().eval(), bundles["lightning_ckpt"].config)
    ref_logit, ref_pred = _teacher_forced(bundles["lightning_ckpt"].model, bundles["lightning_ckpt"].config)
    assert _maxdiff(logit, ref_logit) <= TF_TOL and _maxdiff(pred, ref_pred) <= TF_TOL


def test_merge_strength(paths, bundles):
    base = load_checkpoint(paths["base"]).model
    base_sd = {k: v.clone() for k, v in base.state_dict().items()}
    zero = merge_peft_adapter(base, paths["peft_adapter"], 0.0).state_dict()
    full = merge_peft_adapter(base, paths["peft_adapter"], 1.0).state_dict()
    assert zero.keys() == base_sd.keys()
    fully_trained = _fully_trained(paths["peft_adapter"], zero)
    assert "skeleton_emb.weight" in fully_trained
    for k, v in zero.items():  # strength 0: the base, with the tables trained in full as trained
        assert torch.equal(v, full[k] if k in fully_trained else base_sd[k]), f"strength 0 changed {k}"
    exported = bundles["release_dir"].model.state_dict()
    assert max(_maxdiff(full[k], exported[k]) for k in full) <= 1e-6
    half = merge_peft_adapter(base, paths["peft_adapter"], 0.5).state_dict()
    k = "skeleton_emb.weight"  # trained in full: taken as trained at every strength (tests/.../test_lora_strength)
    assert torch.equal(half[k], full[k]) and not torch.equal(half[k], base_sd[k])
    for k, v in base.state_dict().items():  # the base model itself is left alone
        assert torch.equal(v, base_sd[k])


def test_export_script_from_the_training_checkpoint(paths, bundles, tmp_path):
    ckpt = torch.load(paths["lightning_ckpt"], weights_only=True)
    ckpt["songbloom_licences"] = [{"name": "tiny test data", "licence": "CC-BY-NC-4.0", "url": "", "commercial": False}]
    src = tmp_path / "with_licences.ckpt"
    torch.save(ckpt, src)
    out = tmp_path / "exp"
    assert export_main(["--log-level", "WARNING", "export", str(src), "--out", str(out), "--name", "mysong"]) == 0
    assert (out / "release" / "mysong.pt").is_file() and (out / "release" / "mysong.yaml").is_file()
    meta = json.loads((out / "release" / "mysong.export.json").read_text())
    assert meta["licences"][0]["licence"] == "CC-BY-NC-4.0" and meta["ema"] is True
    ref_logit, ref_pred = _teacher_forced(bundles["lightning_ckpt"].model, bundles["lightning_ckpt"].config)
    for sub in ("release", "merged", "peft_adapter"):
        bundle = load_checkpoint(out / sub)
        logit, pred = _teacher_forced(bundle.model, bundle.config)
        assert _maxdiff(logit, ref_logit) <= TF_TOL and _maxdiff(pred, ref_pred) <= TF_TOL, sub
    # Any loadable format exports too (here: the release-format dir back to merged safetensors).
    again = tmp_path / "again"
    assert export_main(["export", str(out / "release"), "--out", str(again), "--formats", "merged"]) == 0
    assert (
        load_file(str(again / "merged" / "generator.safetensors")).keys()
        == bundles["release_dir"].model.state_dict().keys()
    )
    with pytest.raises(SystemExit, match="LoRA training checkpoint"):
        export_main(["export", str(out / "release"), "--out", str(tmp_path / "x"), "--formats", "adapter"])

    merged0 = tmp_path / "merge0"
    assert export_main(["merge", "--adapter", str(out / "peft_adapter"), "--strength", "0", "--out", str(merged0)]) == 0
    base = load_checkpoint(paths["base"]).model.state_dict()
    zero = load_checkpoint(merged0 / "release").model.state_dict()
    full = bundles["release_dir"].model.state_dict()
    fully_trained = _fully_trained(out / "peft_adapter", base)
    assert all(torch.equal(zero[k], full[k] if k in fully_trained else base[k]) for k in base)


def test_adapter_only_checkpoint_with_explicit_base_and_clear_errors(paths, bundles, tmp_path):
    explicit = load_checkpoint(paths["lightning_ckpt"], base_path=paths["base"])
    a, b = _teacher_forced(explicit.model, explicit.config)
    ra, rb = _teacher_forced(bundles["lightning_ckpt"].model, bundles["lightning_ckpt"].config)
    assert _maxdiff(a, ra) == 0 and _maxdiff(b, rb) == 0

    orphan = tmp_path / "orphan"
    shutil.copytree(paths["peft_adapter"], orphan)
    cfg = json.loads((orphan / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(tmp_path / "gone")
    (orphan / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(FileNotFoundError, match="--base-ckpt"):
        load_checkpoint(orphan)
    assert load_checkpoint(orphan, base_path=paths["base"]).config.model == bundles["peft_adapter"].config.model

    other = write_tiny_release_with_vae(tmp_path / "other_base", num_pitch=24)  # another sketch vocabulary
    with pytest.raises(ValueError, match="--base-ckpt"):
        load_checkpoint(paths["peft_adapter"], base_path=other)


def _expected_samples(cfg: SongBloomConfig) -> int:
    p = cfg.model.block_size
    return SamplingParams(max_frames=MAX_DURATION * cfg.frame_rate).max_patches(p) * p * 1920


@pytest.mark.parametrize("fmt", ["lightning_ckpt", "release_dir", "songbloom_export", "peft_adapter"])
def test_infer_cli_with_every_format(paths, bundles, fmt, tmp_path, monkeypatch):
    from songbloom.cli.infer import main

    sr = 48000
    wav = (0.1 * np.sin(np.linspace(0, 500, sr))).astype(np.float32)
    sf.write(tmp_path / "p.wav", wav, sr)
    (tmp_path / "jobs.jsonl").write_text(
        json.dumps({"idx": "a", "lyrics": "[verse] a i u e o", "prompt_wav": "p.wav"}) + "\n"
    )
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    args = ["--input-jsonl", "jobs.jsonl", "--ckpt-path", str(paths[fmt]), "--output-dir", str(out)]
    args += ["--n-samples", "1", "--seed", "0", "--device", "cpu", "--max-duration", str(MAX_DURATION)]
    assert main([*args, "--log-level", "WARNING"]) == 0
    audio, rate = sf.read(out / "a_s0.flac", always_2d=True)
    assert rate == 48000 and audio.shape == (_expected_samples(bundles[fmt].config), 2)
    assert np.isfinite(audio).all()
