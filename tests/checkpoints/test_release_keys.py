"""Comparing key/shape lists with release_keys_full.json (what the lead's meta-device test uses)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from songbloom.checkpoints.release_keys import assert_keys_match, compare_keys, load_reference_keys, shapes_of
from songbloom.checkpoints.strict import CheckpointMismatchError


@pytest.fixture(scope="module")
def reference_path(shared_dir: Path) -> Path:
    return shared_dir / "reference" / "release_keys_full.json"


def test_reference_keys(reference_path: Path):
    everything = load_reference_keys(reference_path)
    generator = load_reference_keys(reference_path, prefix="model.")
    vae = load_reference_keys(reference_path, prefix="vae.vae.")
    assert len(everything) == 819 and len(generator) + len(vae) == 819
    assert sum(torch.Size(s).numel() for s in generator.values()) == 1_872_409_793
    assert sum(torch.Size(s).numel() for s in vae.values()) == 168_695_426
    assert generator["skeleton_classifier.2.weight"] == (16385, 1536)
    assert "model.bos_token" in load_reference_keys(reference_path, prefix="model.", strip=False)


def test_compare_meta_state_dict(reference_path: Path):
    reference = load_reference_keys(reference_path, prefix="model.")
    meta_sd = {k: torch.empty(s, device="meta") for k, s in reference.items()}
    assert compare_keys(meta_sd, reference).ok
    assert_keys_match(meta_sd, reference, what="full generator")
    assert shapes_of(meta_sd) == reference

    meta_sd.pop("bos_token")
    meta_sd["lora_A.weight"] = torch.empty(2, device="meta")
    meta_sd["skeleton_emb.weight"] = torch.empty(1026, 1536, device="meta")
    result = compare_keys(meta_sd, reference)
    assert not result.ok
    assert result.missing == ["bos_token"]
    assert result.unexpected == ["lora_A.weight"]
    assert result.mismatched == [("skeleton_emb.weight", (16386, 1536), (1026, 1536))]
    with pytest.raises(CheckpointMismatchError, match=r"skeleton_emb.weight: expected \(16386, 1536\), got"):
        assert_keys_match(meta_sd, reference, what="full generator")


def test_bad_reference_file(tmp_path: Path):
    (tmp_path / "k.json").write_text('{"keys": [1, 2]}')
    with pytest.raises(ValueError, match="k.json"):
        load_reference_keys(tmp_path / "k.json")
