"""Loading the release YAMLs: path placeholders, vocabulary, private resolvers and the preset values."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from songbloom.config import SongBloomConfig
from songbloom.config.release_yaml import load_release_yaml
from songbloom.text.vocab import load_vocab_list

RELEASES = {
    "songbloom_full_150s": "full_150s",
    "songbloom_full_150s_dpo": "full_150s",
    "songbloom_full_240s": "full_240s",
}
PATH_FIELDS = {"pretrained_path", "vae_config_path", "vae_ckpt_path"}


@pytest.fixture
def release_dir(shared_dir: Path, tmp_path: Path) -> Path:
    """A release directory holding the three YAMLs and the vocabulary only (no weights)."""
    src = shared_dir / "reference" / "release_config"
    for name in [*(f"{n}.yaml" for n in RELEASES), "vocab_g2p.yaml"]:
        shutil.copy(src / name, tmp_path / name)
    return tmp_path


@pytest.mark.parametrize("name", sorted(RELEASES))
def test_release_yaml_resolves_paths_into_its_own_directory(release_dir: Path, name: str):
    raw = load_release_yaml(release_dir / f"{name}.yaml")
    base = release_dir.resolve()
    assert raw["pretrained_path"] == str(base / f"{name}.pt")
    assert not Path(raw["pretrained_path"]).exists()  # resolving a path never needs the file
    assert raw["vae"] == {
        "vae_cfg": str(base / "stable_audio_1920_vae.json"),
        "vae_ckpt": str(base / "autoencoder_music_dsp1920.ckpt"),
        "sr": 48000,
    }
    lyrics = raw["model"]["condition_provider_cfg"]["lyrics"]
    assert lyrics["vocab_list"] == load_vocab_list(release_dir / "vocab_g2p.yaml")
    assert len(lyrics["vocab_list"]) == 330
    assert lyrics["output_dim"] == 1536
    assert raw["model"]["condition_provider_cfg"]["prompt_wav"]["output_dim"] == 1536
    assert raw["max_dur"] == (240 if name.endswith("240s") else 150)
    assert isinstance(raw, dict) and isinstance(raw["model"], dict)  # plain containers, no OmegaConf nodes


@pytest.mark.parametrize("name", sorted(RELEASES))
def test_presets_equal_the_release_yamls_field_by_field(release_dir: Path, name: str):
    got = SongBloomConfig.from_release_yaml(release_dir / f"{name}.yaml")
    preset = SongBloomConfig.from_name(RELEASES[name])
    for f in dataclasses.fields(preset.model):
        assert getattr(got.model, f.name) == getattr(preset.model, f.name), f"model.{f.name}"
    for f in dataclasses.fields(preset.inference):
        assert getattr(got.inference, f.name) == getattr(preset.inference, f.name), f"inference.{f.name}"
    for f in dataclasses.fields(preset):
        if f.name not in PATH_FIELDS | {"model", "inference"}:
            assert getattr(got, f.name) == getattr(preset, f.name), f.name
    assert got.pretrained_path == str(release_dir.resolve() / f"{name}.pt")
    assert got.vae_config_path == str(release_dir.resolve() / "stable_audio_1920_vae.json")
    assert got.vae_ckpt_path == str(release_dir.resolve() / "autoencoder_music_dsp1920.ckpt")


def test_fixture_config(tiny_a_dir: Path):
    raw = load_release_yaml(tiny_a_dir / "config.yaml")
    base = tiny_a_dir.resolve()
    assert raw["pretrained_path"] == str(base / "model.pt")
    assert raw["vae"]["vae_cfg"] == str(base / "vae.json")
    assert raw["vae"]["vae_ckpt"] == str(base / "vae.ckpt")
    cfg = SongBloomConfig.from_release_dict(raw)
    m = cfg.model
    assert (m.dim, m.num_heads, m.lm_layers, m.diff_layers, m.num_pitch, m.latent_dim) == (96, 2, 2, 2, 32, 8)
    assert (m.lyric_max_len, m.prompt_max_len, m.block_size) == (64, 25, 16)
    assert len(m.lyric_vocab) == 330
    assert (cfg.inference.top_k, cfg.inference.steps, cfg.precision) == (20, 10, "32-true")
    for path in (cfg.pretrained_path, cfg.vae_config_path, cfg.vae_ckpt_path):
        assert Path(path).is_file()


def test_model_dir_argument_overrides_the_yaml_directory(release_dir: Path, tmp_path_factory):
    other = tmp_path_factory.mktemp("weights")
    shutil.copy(release_dir / "vocab_g2p.yaml", other / "vocab_g2p.yaml")
    raw = load_release_yaml(release_dir / "songbloom_full_150s.yaml", model_dir=other)
    assert raw["pretrained_path"] == str(other.resolve() / "songbloom_full_150s.pt")


def test_file_overrides_point_single_files_elsewhere(release_dir: Path, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("cache") / "vocab.yaml"
    shutil.copy(release_dir / "vocab_g2p.yaml", elsewhere)
    (release_dir / "vocab_g2p.yaml").unlink()
    raw = load_release_yaml(release_dir / "songbloom_full_240s.yaml", file_overrides={"vocab_g2p.yaml": elsewhere})
    assert len(raw["model"]["condition_provider_cfg"]["lyrics"]["vocab_list"]) == 330
    assert raw["pretrained_path"] == str(release_dir.resolve() / "songbloom_full_240s.pt")


def test_missing_vocabulary_names_the_file(release_dir: Path):
    (release_dir / "vocab_g2p.yaml").unlink()
    with pytest.raises(ValueError, match="vocab_g2p.yaml") as info:
        load_release_yaml(release_dir / "songbloom_full_150s.yaml")
    assert "songbloom_full_150s.yaml" in str(info.value)
    assert "vocab_list" in str(info.value)  # the key being resolved


def test_missing_yaml():
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_release_yaml("/nonexistent/nope.yaml")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_eval_concat_get_fname(tmp_path: Path):
    path = _write(
        tmp_path,
        "dim: 96\n"
        "ffn: ${eval:${dim}*4}\n"
        "frames: ${eval:'48000 // 1920 * 10'}\n"
        "a: [1, 2]\n"
        "b: [3]\n"
        "ab: ${concat:${a},${b}}\n"
        "ckpt: ${dynamic_path:???/songbloom_full_150s.pt}\n"
        "name: ${get_fname:${ckpt}}\n",
    )
    raw = load_release_yaml(path)
    assert raw["ffn"] == 384
    assert raw["frames"] == 250
    assert raw["ab"] == [1, 2, 3]
    assert raw["name"] == "songbloom_full_150s"


def test_eval_refuses_code(tmp_path: Path, monkeypatch):
    path = _write(tmp_path, "x: ${eval:'__import__(\"os\").getcwd()'}\n")
    with pytest.raises(ValueError, match="not allowed") as info:
        load_release_yaml(path)
    assert "__import__" in str(info.value) and str(path) in str(info.value)


def test_global_resolvers_are_left_alone(release_dir: Path):
    """A user's own global ``dynamic_path`` keeps working and is not used by our loader; nothing is added."""
    names = ("eval", "concat", "get_fname", "load_yaml", "dynamic_path")
    before = {n: OmegaConf.has_resolver(n) for n in names}
    if before["dynamic_path"]:
        pytest.fail("a global dynamic_path resolver is already registered by another test; this test needs none")
    OmegaConf.register_new_resolver("dynamic_path", lambda x: "GLOBAL")
    try:
        raw = load_release_yaml(release_dir / "songbloom_full_150s.yaml")
        assert raw["pretrained_path"] == str(release_dir.resolve() / "songbloom_full_150s.pt")
        assert OmegaConf.create({"p": "${dynamic_path:???/x}"}).p == "GLOBAL"
    finally:
        OmegaConf.clear_resolver("dynamic_path")
    load_release_yaml(release_dir / "songbloom_full_150s.yaml")
    assert {n: OmegaConf.has_resolver(n) for n in names} == before


def test_unknown_resolver_is_a_clear_error(tmp_path: Path):
    path = _write(tmp_path, "x: ${no_such_resolver:1}\n")
    with pytest.raises(ValueError, match="no_such_resolver") as info:
        load_release_yaml(path)
    assert str(path) in str(info.value)


def test_top_level_must_be_a_mapping(tmp_path: Path):
    with pytest.raises(ValueError, match="mapping"):
        load_release_yaml(_write(tmp_path, "- 1\n- 2\n"))
