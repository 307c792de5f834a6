"""``experiment=japanese_lora`` against a local folder laid out like the release but holding a tiny random model.

Every adapter and every declared fully-trained tensor must get a nonzero gradient and move; every other base
tensor must be bit-identical after training.
"""

from __future__ import annotations

from pathlib import Path

import torch

from songbloom.building.lora import is_adapter_param
from songbloom.building.trainable import FULL_SETS
from songbloom.checkpoints.release_state import save_release_checkpoint
from songbloom.checkpoints.release_yaml_writer import write_release_yaml
from songbloom.config import SongBloomConfig
from songbloom.models.songbloom import SongBloomModel
from tests.data.standins import write_toy_codebook
from tests.training.conftest import TINY_CPU, run_flat

RELEASE = "songbloom_full_150s"


def write_tiny_release(folder: Path) -> dict[str, torch.Tensor]:
    """The release file set (YAML, .pt, VAE json/ckpt, vocabulary) around a tiny random generator."""
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


def _assert_declared_tensors_trained(result: dict, release_sd: dict[str, torch.Tensor]) -> None:
    """Adapters and declared full sets got nonzero gradients and moved; every other base tensor is unchanged;
    checkpoints hold the trainable tensors only."""
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
    result = run_flat(cfg)
    _assert_declared_tensors_trained(result, release_sd)


JA_SENTENCES = ["さくら が さいた", "ゆめ を みる", "あおい そら", "かぜ が ふく", "ほし の うた", "なみだ を ふいて"]


def make_japanese_shards(root: Path, codebook_hash: str | None = None) -> tuple[Path, Path]:
    """A tiny generated Japanese dataset (synthetic songs, kana lyrics with timestamps, ``language: ja``) encoded
    into shards through the Japanese G2P with the toy encoders (8-d latents, 64 sketch codes, as ``model=tiny``).
    Returns (manifest, shards_dir)."""
    import json

    from songbloom.data.encoders import Encoders, TextFrontendLyricsProcessor
    from songbloom.data.lyrics import sections_to_lyrics
    from songbloom.data.manifest import Section
    from songbloom.data.preprocess import PreprocessConfig, run_preprocess
    from songbloom.data.synthetic import make_synthetic_dataset
    from tests.data.standins import SHARD_KW, ToySketch, ToyVAE

    manifest = make_synthetic_dataset(root / "songs", num_songs=4, min_seconds=7.0, max_seconds=9.0, seed=7)
    rows = []
    for i, line in enumerate(manifest.read_text(encoding="utf-8").splitlines()):
        row = json.loads(line)
        sections = []
        for j, s in enumerate(row["sections"]):
            text = (
                f"{JA_SENTENCES[(i + j) % len(JA_SENTENCES)]} . {JA_SENTENCES[(i + 2 * j + 1) % 6]} ."
                if s["text"]
                else ""
            )
            sections.append({**s, "text": text})
        row.update(
            language="ja",
            sections=sections,
            lyrics=sections_to_lyrics([Section(s["tag"], s["start"], s["end"], s["text"]) for s in sections], 1.0),
        )
        rows.append(json.dumps(row, ensure_ascii=False))
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    sketch = ToySketch(64, codebook_hash=codebook_hash)
    enc = Encoders(latent=ToyVAE(), lyrics=TextFrontendLyricsProcessor(policy="error"), sketch=sketch)
    shards = root / "shards"
    report = run_preprocess([manifest], PreprocessConfig(out_dir=str(shards), **SHARD_KW), enc)
    assert report.written > 0 and not report.problems, report.to_json()
    return manifest, shards


def test_japanese_lora_on_japanese_shards(compose, tmp_path: Path):
    """The same guarantees when the data comes through the real path: Japanese manifest -> G2P -> shards ->
    the streaming datamodule (``data=japanese``, which requires the manifest)."""
    from songbloom.data.shards import decode_sample, iter_tar_samples
    from songbloom.text.vocab import Vocabulary

    codebook = tmp_path / "codebook.safetensors"  # the toy sketch codes stand in for this codebook's (64 codes)
    manifest, shards = make_japanese_shards(tmp_path / "ja", codebook_hash=write_toy_codebook(codebook))
    vocab = Vocabulary.default()
    first = decode_sample(next(iter(iter_tar_samples(sorted(map(str, shards.glob("train-*.tar")))))))
    assert first["meta"]["language"] == "ja"
    sung = [vocab.items[i] for i in first["lyric_ids"].tolist()]
    assert "s" in sung and "a" in sung  # Japanese phonemes (romaji symbols) from the G2P, not kana

    release_sd = write_tiny_release(tmp_path / "release")
    cfg = compose(
        [
            "experiment=japanese_lora",
            "model=tiny",
            "trainer=cpu",
            "debug=ci",
            "demo.enabled=false",
            f"data.manifest={manifest}",
            f"data.shards_dir={shards}",
            "data.batch_size=2",
            "data.max_frames=32",
            "data.shuffle_buffer=2",
            "data.bucket_batches=1",
            "data.batches_per_epoch=2",
            f"init.release_dir={tmp_path / 'release'}",
            f"sketch.codebook_path={codebook}",
            "trainer.max_steps=3",
            "training.track_grad_coverage=true",
            "training.condition_dropout=false",
        ]
    )
    result = run_flat(cfg)
    assert result["_lit_module"].run_config["data"]["_target_"] == "songbloom.training.data.shards"
    _assert_declared_tensors_trained(result, release_sd)
