"""write_release_yaml: the written directory loads back to the same config, with release-style placeholders."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from songbloom.checkpoints.release_yaml_writer import write_release_yaml
from songbloom.config import SongBloomConfig
from songbloom.config.release_yaml import load_release_yaml
from songbloom.text.vocab import load_vocab_list

PATH_FIELDS = ("pretrained_path", "vae_config_path", "vae_ckpt_path")


def _without_paths(cfg: SongBloomConfig) -> dict:
    d = cfg.to_dict()
    for name in PATH_FIELDS:
        d.pop(name)
    return d


@pytest.mark.parametrize("preset", ["tiny", "small", "full_150s", "full_240s"])
def test_round_trip(tmp_path: Path, preset: str):
    cfg = SongBloomConfig.from_name(preset)
    out = write_release_yaml(cfg, tmp_path, yaml_name="m.yaml", pt_name="m.pt")
    back = SongBloomConfig.from_release_yaml(out)
    assert _without_paths(back) == _without_paths(cfg)
    base = tmp_path.resolve()
    assert back.pretrained_path == str(base / "m.pt")
    assert back.vae_config_path == str(base / "stable_audio_1920_vae.json")
    assert back.vae_ckpt_path == str(base / "autoencoder_music_dsp1920.ckpt")


def test_changed_geometry_and_vocab_round_trip(tmp_path: Path):
    cfg = SongBloomConfig.from_name("tiny", num_pitch=129, hidden_scale=3, lyric_vocab=("", "[verse]", "a", "b"))
    cfg.inference.cfg_coef = [1.5, 2.0]
    back = SongBloomConfig.from_release_yaml(write_release_yaml(cfg, tmp_path))
    assert _without_paths(back) == _without_paths(cfg)
    assert load_vocab_list(tmp_path / "vocab_g2p.yaml") == ["", "[verse]", "a", "b"]


def test_placeholders_are_the_release_ones(tmp_path: Path):
    out = write_release_yaml(SongBloomConfig.from_name("full_150s"), tmp_path, pt_name="songbloom_full_150s.pt")
    raw = yaml.safe_load(out.read_text())
    assert raw["pretrained_path"] == "${dynamic_path:???/songbloom_full_150s.pt}"
    assert raw["vae"]["vae_cfg"] == "${dynamic_path:???/stable_audio_1920_vae.json}"
    assert raw["vae"]["vae_ckpt"] == "${dynamic_path:???/autoencoder_music_dsp1920.ckpt}"
    assert raw["vae"]["sr"] == "${sr}"
    lyrics = raw["model"]["condition_provider_cfg"]["lyrics"]
    assert lyrics["vocab_list"] == "${load_yaml:${dynamic_path:???/vocab_g2p.yaml}}"
    assert lyrics["output_dim"] == "${model.dim}"


def test_written_full_150s_resolves_like_the_release_yaml(tmp_path: Path, shared_dir: Path):
    """Apart from the inference keys the release leaves at their defaults, the resolved dicts are equal."""
    release_dir = shared_dir / "reference" / "release_config"
    ours = load_release_yaml(
        write_release_yaml(SongBloomConfig.from_name("full_150s"), tmp_path, pt_name="songbloom_full_150s.pt")
    )
    official = load_release_yaml(release_dir / "songbloom_full_150s.yaml", model_dir=tmp_path)
    assert {k: v for k, v in ours["inference"].items() if k not in ("top_p", "use_sampling")} == official["inference"]
    ours.pop("inference"), official.pop("inference")
    assert ours == official


def test_vocabulary_file_has_the_release_entries(tmp_path: Path, shared_dir: Path):
    write_release_yaml(SongBloomConfig.from_name("full_150s"), tmp_path)
    ours = load_vocab_list(tmp_path / "vocab_g2p.yaml")
    assert ours == load_vocab_list(shared_dir / "reference" / "release_config" / "vocab_g2p.yaml")


def test_does_not_overwrite_different_files(tmp_path: Path):
    write_release_yaml(SongBloomConfig.from_name("tiny"), tmp_path)
    write_release_yaml(SongBloomConfig.from_name("tiny"), tmp_path)  # identical content: fine
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_release_yaml(SongBloomConfig.from_name("tiny", num_pitch=99), tmp_path)
    write_release_yaml(SongBloomConfig.from_name("tiny", num_pitch=99), tmp_path, overwrite=True)
    assert SongBloomConfig.from_release_yaml(tmp_path / "songbloom.yaml").model.num_pitch == 99
    assert not list(tmp_path.glob(".*.tmp"))
