"""Our release YAML has the release files' keys and value types, key by key (the official sampler slices audio
with ``sr * train_dataset.prompt_len``, so ``prompt_len: 10.0`` instead of ``10`` breaks generation)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from songbloom.checkpoints.release_yaml_writer import write_release_yaml
from songbloom.config import SongBloomConfig

RELEASE_YAMLS = ("songbloom_full_150s.yaml", "songbloom_full_150s_dpo.yaml", "songbloom_full_240s.yaml")


def _leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf of a YAML tree by its dotted key (mappings are walked; lists are leaves)."""
    if not isinstance(node, dict):
        return {prefix: node}
    out: dict[str, Any] = {}
    for k, v in node.items():
        out.update(_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


@pytest.mark.parametrize("name", RELEASE_YAMLS)
def test_keys_and_value_types_match_the_release_yaml(tmp_path: Path, shared_dir: Path, name: str):
    release = shared_dir / "reference" / "release_config" / name
    cfg = SongBloomConfig.from_release_yaml(release)
    stem = name.removesuffix(".yaml")
    ours = write_release_yaml(cfg, tmp_path, yaml_name=name, pt_name=f"{stem}.pt")
    theirs_leaves = _leaves(yaml.safe_load(release.read_text(encoding="utf-8")))
    ours_leaves = _leaves(yaml.safe_load(ours.read_text(encoding="utf-8")))
    only_ours = sorted(set(ours_leaves) - set(theirs_leaves))
    only_release = sorted(set(theirs_leaves) - set(ours_leaves))
    assert not only_ours and not only_release, f"keys only in ours {only_ours}, only in the release {only_release}"
    for key, want in theirs_leaves.items():
        got = ours_leaves[key]
        assert type(got) is type(want), f"{key}: ours {got!r} ({type(got).__name__}), release {want!r}"
        if key == "model.condition_provider_cfg.lyrics.vocab_list":
            continue  # the vocabulary file is written beside our YAML under the same placeholder
        assert got == want, f"{key}: ours {got!r}, release {want!r}"


def test_prompt_slice_length_is_an_int(tmp_path: Path):
    """What the official sampler computes from our YAML: ``prompt_wav[..., :sr * prompt_len]``."""
    out = write_release_yaml(SongBloomConfig.from_name("tiny"), tmp_path)
    raw = yaml.safe_load(out.read_text(encoding="utf-8"))
    n = raw["sr"] * raw["train_dataset"]["prompt_len"]
    assert isinstance(n, int), f"sr * prompt_len = {n!r} cannot slice a tensor"
    assert isinstance(raw["max_dur"], int) and isinstance(raw["min_dur"], int)
