"""The sketch tables: their hash (base weights, whatever the wrapping), how ``trainable.sketch_embedding: auto``
resolves against a recovered codebook, and the layout each ``trainable.recovered_tables`` option builds."""

from __future__ import annotations

import logging

import pytest
import torch

from songbloom.building.lora import is_adapter_param
from songbloom.building.model import apply_training_layout, resolve_run_sketch_tables
from songbloom.building.sketch_tables import (
    SKETCH_TABLE_KEYS,
    RecoveredCodebook,
    SketchTablesLayout,
    resolve_sketch_tables,
    sketch_tables_sha256,
)
from songbloom.building.trainable import FULL_SETS
from songbloom.config import SongBloomConfig
from songbloom.config.run import RunConfigError, parse_run_config, stored_run_config
from songbloom.models.songbloom import SongBloomModel

RELEASE = "songbloom_full_150s"


def tiny_model(seed: int = 0) -> SongBloomModel:
    torch.manual_seed(seed)
    return SongBloomModel(SongBloomConfig.from_name("tiny").model)


def run_config(**trainable):
    return stored_run_config({
        "init": {"source": "release", "release_name": RELEASE},
        "sketch": {"codebook_path": "codebook.safetensors"},
        "lora": {"preset": "lm_attn", "rank": 4, **trainable.pop("lora", {})},
        "trainable": trainable,
    })


def recovered_from(model: SongBloomModel, name: str = RELEASE) -> RecoveredCodebook:
    return RecoveredCodebook(codebook_hash="0123456789abcdef", base_name=name,
                             sketch_tables_sha256=sketch_tables_sha256(model))


def test_table_keys_are_the_full_sets_and_exist():
    assert SKETCH_TABLE_KEYS == FULL_SETS["sketch_embedding"] + FULL_SETS["sketch_classifier"]
    names = dict(tiny_model().named_parameters())
    assert all(k in names for k in SKETCH_TABLE_KEYS)


def test_hash_is_the_base_weights_and_sees_every_table():
    model = tiny_model()
    sha = sketch_tables_sha256(model)
    assert len(sha) == 64 and sha == sketch_tables_sha256(model.state_dict())
    assert sha == sketch_tables_sha256({f"model.{k}": v for k, v in model.state_dict().items()})
    # Adapters on the classifier (peft base_layer names) and trained adapter values do not change it.
    apply_training_layout(model, run_config(), "release", SketchTablesLayout(mode="lora", reason="test"))
    assert "skeleton_classifier.0.base_layer.weight" in dict(model.named_parameters())
    with torch.no_grad():
        for n, p in model.named_parameters():
            if is_adapter_param(n):
                p.add_(1.0)
    assert sketch_tables_sha256(model) == sha
    # A bf16 copy of values that bf16 holds exactly hashes the same (float32 bytes are hashed).
    sd = {k: v.to(torch.bfloat16).float() for k, v in tiny_model().state_dict().items()}
    assert sketch_tables_sha256(sd) == sketch_tables_sha256({k: v.to(torch.bfloat16) for k, v in sd.items()})
    # Each table counts: nudging one value anywhere changes the hash; other tensors do not.
    base_sd = tiny_model().state_dict()
    for key in SKETCH_TABLE_KEYS:
        nudged = dict(base_sd)
        nudged[key] = base_sd[key].clone()
        nudged[key].view(-1)[-1] += 1e-6
        assert sketch_tables_sha256(nudged) != sha, key
    other = dict(base_sd)
    other["bos_token"] = base_sd["bos_token"] + 1
    assert sketch_tables_sha256(other) == sha
    with torch.device("meta"):
        meta = SongBloomModel(SongBloomConfig.from_name("tiny").model)
    with pytest.raises(ValueError, match="meta device"):
        sketch_tables_sha256(meta)
    with pytest.raises(KeyError, match="skeleton_emb.weight"):
        sketch_tables_sha256({})


def test_auto_keeps_tables_only_for_a_codebook_recovered_from_them(caplog):
    model = tiny_model()
    sha = sketch_tables_sha256(model)
    same = recovered_from(model)
    kw = dict(source="release", new_codebook=True, init_name=RELEASE)
    for mode in ("frozen", "low_lr", "lora"):
        layout = resolve_sketch_tables("auto", mode, recovered=same, init_sha256=sha, **kw)
        assert layout.mode == mode and layout.kept and layout.recorded_sha256 == sha == layout.init_sha256
    assert not caplog.records

    with caplog.at_level(logging.WARNING):
        other = resolve_sketch_tables("auto", "frozen", recovered=recovered_from(tiny_model(1)), init_sha256=sha, **kw)
    assert other.mode == "train" and other.trains_in_full and "differ" in caplog.text and "train in full" in caplog.text
    caplog.clear()
    # Other base weights (e.g. _240s) whose tables are the same: kept, with a warning that says they match.
    with caplog.at_level(logging.WARNING):
        layout = resolve_sketch_tables("auto", "frozen", recovered=same, init_sha256=sha, source="release",
                                       new_codebook=True, init_name="songbloom_full_240s")
    assert layout.mode == "frozen" and "identical" in caplog.text and "songbloom_full_240s" in caplog.text

    # Explicit settings win; without a recovered codebook the rule of earlier versions holds.
    assert resolve_sketch_tables(True, "frozen", recovered=same, init_sha256=sha, **kw).mode == "train"
    assert resolve_sketch_tables(False, "lora", **kw).mode == "frozen"
    assert resolve_sketch_tables("auto", "frozen", **kw).mode == "train"
    assert resolve_sketch_tables("auto", "frozen", source="export", new_codebook=False).mode == "frozen"
    # Without weights (a memory plan) the base's name decides.
    assert resolve_sketch_tables("auto", "low_lr", recovered=same, **kw).mode == "low_lr"
    assert resolve_sketch_tables("auto", "low_lr", recovered=same, source="release", new_codebook=True,
                                 init_name="other").mode == "train"
    with pytest.raises(ValueError, match="recovered_tables='some'"):
        resolve_sketch_tables("auto", "some", **kw)
    with pytest.raises(ValueError, match="sketch_embedding='yes'"):
        resolve_sketch_tables("yes", "frozen", **kw)


def test_layout_round_trips_and_bad_config_values_are_refused():
    layout = SketchTablesLayout(mode="lora", reason="r", codebook_hash="h", recovered_from=RELEASE,
                                recorded_sha256="a" * 64, init_sha256="a" * 64)
    assert SketchTablesLayout.from_dict(layout.to_dict()) == layout
    with pytest.raises(ValueError, match="mode 'half'"):
        SketchTablesLayout.from_dict({"mode": "half"})
    with pytest.raises(RunConfigError, match="trainable.recovered_tables='lowlr'"):
        parse_run_config({"data": {"_target_": "x"}, "trainable": {"recovered_tables": "lowlr"}})


def _trainable(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("mode", ["frozen", "low_lr", "lora", "train"])
def test_each_mode_builds_its_layout(mode: str):
    model = tiny_model()
    rc = run_config(recovered_tables=mode if mode != "train" else "frozen", lora={"base_dtype": "bf16"})
    recovered = recovered_from(model if mode != "train" else tiny_model(1))
    layout = resolve_run_sketch_tables(rc, "release", recovered, model)
    assert layout.mode == mode
    before = {k: v.clone() for k, v in model.state_dict().items() if k in SKETCH_TABLE_KEYS}
    report = apply_training_layout(model, rc, "release", layout)
    trainable = _trainable(model)
    tables_trained = set(SKETCH_TABLE_KEYS) <= trainable
    assert tables_trained == (mode in ("low_lr", "train"))
    assert not (set(SKETCH_TABLE_KEYS) & trainable) or tables_trained
    assert report.get("low_lr") == (list(SKETCH_TABLE_KEYS) if mode == "low_lr" else None)
    classifier_adapters = {n for n in trainable if n.startswith("skeleton_classifier.") and is_adapter_param(n)}
    assert bool(classifier_adapters) == (mode == "lora")
    assert not any(n.startswith("skeleton_emb.") and is_adapter_param(n) for n in trainable)
    if mode in ("frozen", "lora"):
        # Kept tables are base weights: not cast to the bf16 frozen base, values unchanged.
        sd = {k.replace(".base_layer.", "."): v for k, v in model.state_dict().items()}
        for k in SKETCH_TABLE_KEYS:
            assert sd[k].dtype == torch.float32 and torch.equal(sd[k], before[k]), k
        assert model.ar_transformer.layers[0].mlp.gate_proj.weight.dtype == torch.bfloat16  # the rest is cast


def test_no_lora_no_layout():
    rc = stored_run_config({"init": {"source": "release"}, "sketch": {"codebook_path": "c"}})
    model = tiny_model()
    assert resolve_run_sketch_tables(rc, "release", recovered_from(model), model) is None
