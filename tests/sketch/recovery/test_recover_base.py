"""``--base``: a release folder or .pt, an export folder, or a release name found offline; each named the way a
training run names its init weights, with the hash of its sketch tables and the fingerprint of its weights file."""

from __future__ import annotations

from pathlib import Path

import pytest

from songbloom.building.sketch_tables import sketch_tables_sha256
from songbloom.checkpoints.bundle import SongBloom
from songbloom.checkpoints.fingerprint import file_fingerprint
from songbloom.checkpoints.formats.merged import export_merged
from songbloom.sketch.recovery.base_model import BaseModelError, load_base
from tests.docs.doc_harness import write_tiny_release
from tests.sketch.recovery.recover_world import BASE_NAME, write_base


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return write_base(tmp_path_factory.mktemp("base") / "release")


@pytest.mark.parametrize("what", ["folder", "pt"])
def test_release_folder_and_pt_are_named_after_the_weights_file(release: Path, what: str):
    spec = release if what == "folder" else release / f"{BASE_NAME}.pt"
    base = load_base(spec)
    assert base.name == BASE_NAME and base.num_pitch == 64
    assert base.sketch_tables_sha256 == sketch_tables_sha256(SongBloom.from_release_dir(release).model)
    assert base.file_fingerprint == file_fingerprint(release / f"{BASE_NAME}.pt")
    assert base.corpus_facts()["sketch_tables_sha256"] == base.sketch_tables_sha256


def test_an_export_is_named_by_its_path(release: Path, tmp_path: Path):
    bundle = SongBloom.from_release_dir(release)
    export_merged(bundle.model, bundle.config, tmp_path / "export", vae=bundle.vae)
    spec = str(tmp_path / "export")
    base = load_base(spec)
    assert base.name == spec and base.file_fingerprint is None  # a folder: no single weights file
    assert base.sketch_tables_sha256 == sketch_tables_sha256(bundle.model)


def test_a_release_name_is_found_in_the_local_dir(tmp_path: Path, monkeypatch):
    from songbloom.checkpoints import release_files

    monkeypatch.setattr(release_files, "_from_hub", lambda *a, **k: None)  # whatever this machine's Hub cache holds
    folder = write_tiny_release(tmp_path / "ckpts")
    base = load_base("songbloom_full_150s", local_dir=folder)
    assert base.name == "songbloom_full_150s" and base.file_fingerprint is not None
    with pytest.raises(BaseModelError, match="the release files are not on disk"):
        load_base("songbloom_full_240s", local_dir=folder)


def test_anything_else_is_refused_with_what_to_give(tmp_path: Path):
    with pytest.raises(BaseModelError, match="no such file or directory, and not a release name"):
        load_base(tmp_path / "nothing_here")
