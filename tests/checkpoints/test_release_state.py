"""Release checkpoint I/O: splitting, the release-era duplicate VAE, strict loading reports, atomic saving."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from torch import nn

from songbloom.checkpoints.release_state import (
    LEGACY_VAE_PREFIX,
    load_release_state_dict,
    read_release_checkpoint,
    save_release_checkpoint,
    split_release_state_dict,
)
from songbloom.checkpoints.strict import CheckpointMismatchError, strict_load
from songbloom.checkpoints.vae import load_vae_checkpoint


def module_from_shapes(shapes: dict[str, tuple[int, ...]]) -> nn.Module:
    """A stand-in module whose state-dict keys and shapes are exactly ``shapes`` (zeros)."""
    root = nn.Module()
    for name, shape in shapes.items():
        *path, leaf = name.split(".")
        mod = root
        for part in path:
            if not hasattr(mod, part):
                mod.add_module(part, nn.Module())
            mod = getattr(mod, part)
        mod.register_parameter(leaf, nn.Parameter(torch.zeros(shape)))
    return root


@pytest.fixture(scope="module")
def release_sd(tiny_a_dir: Path) -> dict[str, torch.Tensor]:
    return load_release_state_dict(tiny_a_dir / "model.pt")


def _with_legacy_block(sd: dict[str, torch.Tensor], drop_main: bool = False) -> dict[str, torch.Tensor]:
    out = {k: v for k, v in sd.items() if not (drop_main and k.startswith("vae.vae."))}
    for k, v in sd.items():
        if k.startswith("vae.vae."):
            out[LEGACY_VAE_PREFIX + k[len("vae.vae.") :]] = v.clone()
    return out


# ------------------------------------------------------------------------------------------------ splitting
def test_split_fixture(release_sd, tiny_a_dir: Path):
    generator, vae, report = split_release_state_dict(release_sd)
    assert (len(generator), len(vae)) == (58, 155)
    assert (report.n_generator, report.n_vae, report.vae_source) == (58, 155, "vae.vae")
    assert not report.legacy_duplicate_found
    assert set(generator) == {k[len("model.") :] for k in release_sd if k.startswith("model.")}
    assert "skeleton_classifier.2.weight" in generator
    vae_ckpt = load_vae_checkpoint(tiny_a_dir / "vae.ckpt")
    assert set(vae) == set(vae_ckpt)
    assert all(torch.equal(vae[k], vae_ckpt[k]) for k in vae)


def test_release_era_duplicate_is_dropped(release_sd, caplog):
    sd = _with_legacy_block(release_sd)
    assert len(sd) == len(release_sd) + 155
    with caplog.at_level(logging.INFO, logger="songbloom.checkpoints.release_state"):
        generator, vae, report = split_release_state_dict(sd)
    assert (len(generator), len(vae)) == (58, 155)
    assert not any(k.startswith("condition_provider.conditioners.prompt_wav.tokenizer") for k in generator)
    assert report.legacy_duplicate_found and report.legacy_duplicate_dropped
    assert report.legacy_duplicate_identical is True
    assert report.legacy_duplicate_max_abs_diff == 0.0
    assert any("dropped the release-era duplicate" in n for n in report.notes)
    assert "dropped the release-era duplicate" in caplog.text


def test_release_era_duplicate_alone_becomes_the_vae(release_sd):
    generator, vae, report = split_release_state_dict(_with_legacy_block(release_sd, drop_main=True))
    assert (len(generator), len(vae)) == (58, 155)
    assert report.vae_source == "legacy_duplicate"
    assert all(torch.equal(vae[k], release_sd["vae.vae." + k]) for k in vae)


def test_differing_duplicate_is_reported(release_sd, caplog):
    sd = _with_legacy_block(release_sd)
    key = LEGACY_VAE_PREFIX + "decoder.layers.0.bias"
    sd[key] = sd[key] + 0.25
    with pytest.raises(CheckpointMismatchError, match=r"max \|diff\| 0\.25 \(at decoder\.layers\.0\.bias\)"):
        split_release_state_dict(sd)
    with caplog.at_level(logging.WARNING, logger="songbloom.checkpoints.release_state"):
        _, vae, report = split_release_state_dict(sd, duplicate_mismatch="warn")
    assert report.legacy_duplicate_identical is False
    assert report.legacy_duplicate_max_abs_diff == pytest.approx(0.25)
    assert torch.equal(vae["decoder.layers.0.bias"], release_sd["vae.vae.decoder.layers.0.bias"])  # vae.vae wins
    assert "differs" in caplog.text


def test_duplicate_with_other_layout_fails(release_sd):
    sd = _with_legacy_block(release_sd)
    del sd[LEGACY_VAE_PREFIX + "encoder.layers.0.bias"]
    with pytest.raises(CheckpointMismatchError, match=r"keys only under vae\.vae\.: \['encoder\.layers\.0\.bias'\]"):
        split_release_state_dict(sd)


@pytest.mark.parametrize(
    "extra",
    [
        "optimizer.step",
        "vae.encoder.layers.0.bias",
        "model.condition_provider.conditioners.prompt_wav.tokenizer.quantizer.weight",
        LEGACY_VAE_PREFIX + "bottleneck.scale",
    ],
)
def test_unknown_keys_fail_and_are_named(release_sd, extra: str):
    sd = dict(release_sd)
    sd[extra] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError) as info:
        split_release_state_dict(sd)
    assert extra in str(info.value)
    assert info.value.unexpected == [extra]


def test_missing_vae(release_sd):
    generator_only = {k: v for k, v in release_sd.items() if k.startswith("model.")}
    with pytest.raises(CheckpointMismatchError, match="no VAE"):
        split_release_state_dict(generator_only)
    generator, vae, report = split_release_state_dict(generator_only, require_vae=False)
    assert (len(generator), vae, report.vae_source) == (58, {}, None)


# ------------------------------------------------------------------------------------------------ reading and saving
def test_save_load_round_trip(release_sd, tmp_path: Path):
    generator, vae, _ = split_release_state_dict(release_sd)
    path = save_release_checkpoint(tmp_path / "out" / "songbloom.pt", generator, vae)
    back = load_release_state_dict(path)
    assert set(back) == set(release_sd)
    for k, v in release_sd.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape
        assert torch.equal(back[k], v), k
    assert not [p for p in path.parent.iterdir() if p.name != "songbloom.pt"]  # no temp files left


def test_save_drops_the_duplicate_and_overwrites_atomically(release_sd, tmp_path: Path):
    generator, vae, _ = split_release_state_dict(_with_legacy_block(release_sd))
    path = tmp_path / "m.pt"
    path.write_bytes(b"old")
    save_release_checkpoint(path, generator, vae)
    back = load_release_state_dict(path)
    assert set(back) == set(release_sd)


def test_save_writes_views_without_their_storage(tmp_path: Path):
    big = torch.randn(1000, 100)
    save_release_checkpoint(tmp_path / "v.pt", {"w": big[:2]}, {"encoder.b": big[0, :3]})
    assert (tmp_path / "v.pt").stat().st_size < 20_000
    back = load_release_state_dict(tmp_path / "v.pt")
    assert torch.equal(back["model.w"], big[:2]) and torch.equal(back["vae.vae.encoder.b"], big[0, :3])


def test_save_rejects_prefixed_or_odd_keys(tmp_path: Path):
    with pytest.raises(ValueError, match="un-prefixed"):
        save_release_checkpoint(tmp_path / "x.pt", {"model.w": torch.zeros(1)}, {})
    with pytest.raises(ValueError, match="encoder. or decoder."):
        save_release_checkpoint(tmp_path / "x.pt", {"w": torch.zeros(1)}, {"bottleneck.x": torch.zeros(1)})
    assert not list(tmp_path.iterdir())


def test_load_accepts_lightning_style_and_old_format(release_sd, tmp_path: Path):
    small = {k: release_sd[k] for k in list(release_sd)[:3]}
    torch.save({"state_dict": small, "global_step": 7, "epoch": 1}, tmp_path / "pl.ckpt")
    assert set(load_release_state_dict(tmp_path / "pl.ckpt")) == set(small)
    torch.save(small, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)  # not mmap-able
    back = load_release_state_dict(tmp_path / "legacy.pt")
    assert all(torch.equal(back[k], small[k]) for k in small)


def test_load_rejects_non_state_dicts(tmp_path: Path):
    torch.save({"a": torch.zeros(1), "b": 3}, tmp_path / "mixed.pt")
    with pytest.raises(ValueError, match="mixed.pt") as info:
        load_release_state_dict(tmp_path / "mixed.pt")
    assert "'a', 'b'" in str(info.value)
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="expected a dict"):
        load_release_state_dict(tmp_path / "list.pt")
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        load_release_state_dict(tmp_path / "absent.pt")


class NotATensor:
    """Stands for objects (optimizer states, configs) that weights_only loading must refuse."""


def test_load_refuses_pickled_objects(tmp_path: Path):
    torch.save({"state_dict": {"a": torch.zeros(1)}, "hparams": NotATensor()}, tmp_path / "obj.ckpt")
    with pytest.raises(ValueError, match="obj.ckpt: holds Python objects") as info:
        load_release_state_dict(tmp_path / "obj.ckpt")
    assert "weights_only=True" in str(info.value)


def test_read_release_checkpoint_names_the_file(release_sd, tiny_a_dir: Path, tmp_path: Path):
    generator, vae, report = read_release_checkpoint(tiny_a_dir / "model.pt")
    assert (len(generator), len(vae), report.n_vae) == (58, 155, 155)
    torch.save({**release_sd, "extra.key": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointMismatchError, match=r"bad\.pt: .*extra\.key"):
        read_release_checkpoint(tmp_path / "bad.pt")


def test_load_vae_checkpoint(tiny_a_dir: Path, tmp_path: Path):
    sd = load_vae_checkpoint(tiny_a_dir / "vae.ckpt")
    assert len(sd) == 155 and all(k.startswith(("encoder.", "decoder.")) for k in sd)
    torch.save(sd, tmp_path / "flat.ckpt")
    with pytest.raises(ValueError, match="state_dict"):
        load_vae_checkpoint(tmp_path / "flat.ckpt")
    torch.save({"state_dict": {"autoencoder.encoder.w": torch.zeros(1)}}, tmp_path / "prefixed.ckpt")
    with pytest.raises(CheckpointMismatchError, match="autoencoder.encoder.w"):
        load_vae_checkpoint(tmp_path / "prefixed.ckpt")


# ------------------------------------------------------------------------------------------------ strict load
class Tiny(nn.Module):
    def __init__(self, width: int = 4, extra: bool = False) -> None:
        super().__init__()
        self.proj = nn.Linear(3, width)
        self.norm = nn.LayerNorm(width)
        if extra:
            self.head = nn.Linear(width, 2)


def test_strict_load_success():
    src, dst = Tiny(), Tiny()
    strict_load(dst, src.state_dict(), what="tiny")
    assert torch.equal(dst.proj.weight, src.proj.weight)


def test_strict_load_report_names_every_problem():
    dst = Tiny(width=4, extra=True)
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    sd = Tiny(width=5).state_dict()
    sd["stray.weight"] = torch.zeros(2)
    with pytest.raises(CheckpointMismatchError) as info:
        strict_load(dst, sd, what="tiny generator")
    err = info.value
    msg = str(err)
    assert isinstance(err, ValueError)
    assert "cannot load tiny generator" in msg
    assert "missing keys (in the module, not in the state dict): 2" in msg
    assert "head.weight (2, 4)" in msg and "head.bias (2,)" in msg
    assert "unexpected keys (in the state dict, not in the module): 1" in msg and "stray.weight (2,)" in msg
    assert "proj.weight: expected (4, 3), got (5, 3)" in msg
    assert "norm.bias: expected (4,), got (5,)" in msg
    assert "hint:" in msg
    assert err.missing == ["head.bias", "head.weight"]
    assert err.unexpected == ["stray.weight"]
    assert [m[0] for m in err.mismatched] == ["norm.bias", "norm.weight", "proj.bias", "proj.weight"]
    assert all(torch.equal(before[k], v) for k, v in dst.state_dict().items())  # nothing was copied


def test_strict_load_truncates_long_lists():
    shapes = {f"layers.{i}.weight": (2,) for i in range(30)}
    with pytest.raises(CheckpointMismatchError) as info:
        strict_load(module_from_shapes(shapes), {}, what="many")
    msg = str(info.value)
    assert "missing keys (in the module, not in the state dict): 30" in msg
    assert "... and 10 more" in msg
    assert msg.count("    - layers.") == 20


def test_strict_load_hints_at_release_prefix(release_sd):
    generator_shapes = {k[len("model.") :]: tuple(v.shape) for k, v in release_sd.items() if k.startswith("model.")}
    module = module_from_shapes(generator_shapes)
    with pytest.raises(CheckpointMismatchError, match="prefix 'model.'.*split_release_state_dict"):
        strict_load(module, {k: v for k, v in release_sd.items() if k.startswith("model.")}, what="generator")


def test_generator_side_strict_load_with_the_fixture(release_sd):
    generator, _, _ = split_release_state_dict(_with_legacy_block(release_sd))
    module = module_from_shapes({k: tuple(v.shape) for k, v in generator.items()})
    strict_load(module, generator, what="tiny_a generator")
    assert torch.equal(module.state_dict()["skeleton_classifier.2.weight"], generator["skeleton_classifier.2.weight"])

    # Another num_pitch: same keys, other shapes -> a geometry hint naming the suspects.
    shapes = {k: tuple(v.shape) for k, v in generator.items()}
    shapes["skeleton_emb.weight"] = (66, 96)
    shapes["skeleton_classifier.2.weight"] = (65, 96)
    shapes["skeleton_classifier.2.bias"] = (65,)
    with pytest.raises(CheckpointMismatchError, match="different geometry.*num_pitch") as info:
        strict_load(module_from_shapes(shapes), generator, what="generator")
    assert "skeleton_classifier.2.weight: expected (65, 96), got (33, 96)" in str(info.value)


def test_strict_load_into_meta_module_with_assign(release_sd):
    generator, _, _ = split_release_state_dict(release_sd)
    with torch.device("meta"):
        module = module_from_shapes({k: tuple(v.shape) for k, v in generator.items()})
    strict_load(module, generator, what="meta generator", assign=True)
    assert not module.state_dict()["bos_token"].is_meta
