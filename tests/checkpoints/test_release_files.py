"""Finding release files: local directory first, Hub only when allowed, clear offline errors, no network."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from songbloom.checkpoints.release_files import (
    MODEL_REPOS,
    ReleaseFilesNotFoundError,
    release_file_plan,
    repo_for,
    resolve_release_files,
)

SHARED_FILES = ("stable_audio_1920_vae.json", "autoencoder_music_dsp1920.ckpt", "vocab_g2p.yaml")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any hf_hub_download that may reach the network fails the test."""
    import huggingface_hub  # release.files imports hf_hub_download from it at call time

    original = huggingface_hub.hf_hub_download

    def guarded(*args, **kwargs):
        if not kwargs.get("local_files_only"):
            raise AssertionError(f"network download attempted: {args} {kwargs}")
        return original(*args, **kwargs)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", guarded)


def _placeholders(directory: Path, name: str, skip: tuple[str, ...] = ()) -> None:
    for filename in (f"{name}.yaml", f"{name}.pt", *SHARED_FILES):
        if filename not in skip:
            (directory / filename).write_bytes(b"")


def test_name_to_repo_mapping():
    assert MODEL_REPOS == {
        "songbloom_full_150s": "CypressYang/SongBloom",
        "songbloom_full_150s_dpo": "CypressYang/SongBloom",
        "songbloom_full_240s": "CypressYang/SongBloom_long",
    }
    assert repo_for("songbloom_full_240s") == "CypressYang/SongBloom_long"
    plan = release_file_plan("songbloom_full_240s")
    assert plan == [
        ("yaml", "CypressYang/SongBloom_long", "songbloom_full_240s.yaml"),
        ("pt", "CypressYang/SongBloom_long", "songbloom_full_240s.pt"),
        ("vae_json", "CypressYang/SongBloom", "stable_audio_1920_vae.json"),
        ("vae_ckpt", "CypressYang/SongBloom", "autoencoder_music_dsp1920.ckpt"),
        ("vocab", "CypressYang/SongBloom", "vocab_g2p.yaml"),
    ]
    with pytest.raises(ValueError, match="songbloom_full_150s_dpo"):
        repo_for("songbloom_full_300s")


@pytest.mark.parametrize("name", sorted(MODEL_REPOS))
def test_local_directory(tmp_path: Path, name: str, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    _placeholders(tmp_path, name)
    files = resolve_release_files(name, tmp_path)
    base = tmp_path.resolve()
    assert files.name == name
    assert files.directory == base
    assert files.yaml == base / f"{name}.yaml"
    assert files.pt == base / f"{name}.pt"
    assert files.vae_json == base / "stable_audio_1920_vae.json"
    assert files.vae_ckpt == base / "autoencoder_music_dsp1920.ckpt"
    assert files.vocab == base / "vocab_g2p.yaml"


def test_offline_error_lists_missing_files_and_command(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    local = tmp_path / "release"
    local.mkdir()
    _placeholders(local, "songbloom_full_240s", skip=("songbloom_full_240s.pt", "vocab_g2p.yaml"))
    with pytest.raises(ReleaseFilesNotFoundError) as info:
        resolve_release_files("songbloom_full_240s", local, cache_dir=tmp_path / "bogus_cache")
    msg = str(info.value)
    assert "2 of 5 files" in msg and "HF_HUB_OFFLINE" in msg
    assert "songbloom_full_240s.pt (repo CypressYang/SongBloom_long)" in msg
    assert "vocab_g2p.yaml (repo CypressYang/SongBloom)" in msg
    assert "songbloom_full_240s.yaml" not in msg.split("fetch them with:")[0]  # present files are not listed
    assert f"hf download CypressYang/SongBloom_long songbloom_full_240s.pt --local-dir {local}" in msg
    assert f"hf download CypressYang/SongBloom vocab_g2p.yaml --local-dir {local}" in msg
    assert isinstance(info.value, FileNotFoundError)


def test_local_only_without_directory(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(ReleaseFilesNotFoundError, match="local_only=True") as info:
        resolve_release_files("songbloom_full_150s", local_only=True, cache_dir=tmp_path / "bogus_cache")
    msg = str(info.value)
    assert "5 of 5 files" in msg
    assert (
        "hf download CypressYang/SongBloom songbloom_full_150s.yaml songbloom_full_150s.pt "
        "stable_audio_1920_vae.json autoencoder_music_dsp1920.ckpt vocab_g2p.yaml" in msg
    )


def test_load_config_uses_the_resolved_paths(tmp_path: Path, shared_dir: Path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    _placeholders(tmp_path, "songbloom_full_240s", skip=("songbloom_full_240s.yaml", "vocab_g2p.yaml"))
    src = shared_dir / "reference" / "release_config"
    shutil.copy(src / "songbloom_full_240s.yaml", tmp_path)
    shutil.copy(src / "vocab_g2p.yaml", tmp_path)
    files = resolve_release_files("songbloom_full_240s", tmp_path, local_only=True)
    cfg = files.load_config()
    assert cfg.max_dur == 240.0
    assert cfg.pretrained_path == str(files.pt)
    assert cfg.vae_ckpt_path == str(files.vae_ckpt)


def _fake_hub_cache(cache: Path, repo: str, filenames: tuple[str, ...]) -> Path:
    """The on-disk layout huggingface_hub reads offline: refs/main -> snapshots/<commit>/<file>."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = cache / ("models--" + repo.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for filename in filenames:
        (snapshot / filename).write_bytes(b"")
    return snapshot


def test_offline_falls_back_to_the_hub_cache(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hub"
    long_snapshot = _fake_hub_cache(cache, "CypressYang/SongBloom_long", ("songbloom_full_240s.yaml",))
    shared_snapshot = _fake_hub_cache(cache, "CypressYang/SongBloom", SHARED_FILES)
    local = tmp_path / "release"
    local.mkdir()
    (local / "songbloom_full_240s.pt").write_bytes(b"")
    files = resolve_release_files("songbloom_full_240s", local, cache_dir=cache)
    assert files.pt == (local / "songbloom_full_240s.pt").resolve()  # local wins
    assert files.yaml == (long_snapshot / "songbloom_full_240s.yaml").resolve()
    assert files.vocab == (shared_snapshot / "vocab_g2p.yaml").resolve()
    assert files.directory == long_snapshot.resolve()
    assert files.file_overrides()["vocab_g2p.yaml"] == files.vocab


def test_download_failure_names_the_file_and_the_command(tmp_path: Path, monkeypatch):
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def no_route(repo_id, filename, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_route)
    _placeholders(tmp_path, "songbloom_full_150s", skip=("autoencoder_music_dsp1920.ckpt",))
    with pytest.raises(ReleaseFilesNotFoundError) as info:
        resolve_release_files("songbloom_full_150s", tmp_path)
    msg = str(info.value)
    assert "could not download autoencoder_music_dsp1920.ckpt from CypressYang/SongBloom" in msg
    assert "network is unreachable" in msg
    assert f"hf download CypressYang/SongBloom autoencoder_music_dsp1920.ckpt --local-dir {tmp_path}" in msg
