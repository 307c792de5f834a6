"""LoRA strength: a merge at strength s scales only the adapter deltas (tables trained in full are taken as
trained: they belong to the shards' codebook), and ``infer.py --lora-scale`` applies the adapters of a training
checkpoint or a PEFT adapter directory at any strength without writing a merged copy."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from songbloom.checkpoints.formats.peft_adapter import merge_peft_adapter
from songbloom.checkpoints.registry import load_checkpoint
from tests.checkpoints.formats.test_export_formats import TF_TOL, _maxdiff, _teacher_forced

FULLY_TRAINED = "skeleton_emb.weight"  # the sketch table japanese_lora trains in full


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread):
    """Tiny models in this module run on one torch thread (see tests/conftest.py)."""


def _adapted_key(base_sd: dict, full: dict) -> str:
    """A weight the LoRA changed (the first one, in key order)."""
    return next(k for k in sorted(base_sd) if k != FULLY_TRAINED and not torch.equal(full[k], base_sd[k]))


def test_merge_scales_only_adapter_deltas(paths, caplog):
    base = load_checkpoint(paths["base"]).model
    base_sd = {k: v.clone() for k, v in base.state_dict().items()}
    full = merge_peft_adapter(base, paths["peft_adapter"], 1.0).state_dict()
    with caplog.at_level(logging.INFO, logger="songbloom"):
        half = merge_peft_adapter(base, paths["peft_adapter"], 0.5).state_dict()
    assert not torch.equal(full[FULLY_TRAINED], base_sd[FULLY_TRAINED])
    assert torch.equal(half[FULLY_TRAINED], full[FULLY_TRAINED]), "a fully trained table was interpolated"
    k = _adapted_key(base_sd, full)
    assert torch.allclose(half[k], base_sd[k] + 0.5 * (full[k] - base_sd[k]), atol=1e-6), k
    assert "taken as trained" in caplog.text and "skeleton_emb" in caplog.text


def _infer(ckpt: Path, out: Path, tmp_path: Path, *extra: str) -> int:
    from songbloom.cli.infer import main

    sr = 48000
    sf.write(tmp_path / "p.wav", (0.1 * np.sin(np.linspace(0, 500, sr))).astype(np.float32), sr)
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"idx": "a", "lyrics": "[verse] a i u e o", "prompt_wav": str(tmp_path / "p.wav")}))
    argv = ["--input-jsonl", str(jobs), "--ckpt-path", str(ckpt), "--output-dir", str(out), "--n-samples", "1"]
    argv += ["--seed", "0", "--device", "cpu", "--max-duration", "1.0", "--log-level", "WARNING", *extra]
    try:
        return main(argv)
    except SystemExit as e:  # argparse and unusable checkpoints exit
        return e.code if isinstance(e.code, int) else 1


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("fmt", ["lightning_ckpt", "peft_adapter"])
def test_infer_lora_scale_applies_adapters_without_a_merged_copy(paths, fmt, tmp_path):
    src = paths[fmt]
    folder = src if src.is_dir() else src.parent
    before = _listing(folder)
    assert _infer(src, tmp_path / "out", tmp_path, "--lora-scale", "0.5") == 0
    assert (tmp_path / "out" / "a_s0.flac").is_file()
    assert _listing(folder) == before, "infer wrote files beside the checkpoint"

    from songbloom.cli.infer import _load_bundle, build_parser

    args = build_parser().parse_args(["--input-jsonl", "x", "--ckpt-path", str(src), "--lora-scale", "0.5"])
    scaled = _load_bundle(args, torch.device("cpu"), torch.float32)
    merged = merge_peft_adapter(load_checkpoint(paths["base"]).model.float(), paths["peft_adapter"], 0.5)
    a, b = _teacher_forced(scaled.model, scaled.config)
    ra, rb = _teacher_forced(merged, scaled.config)
    assert _maxdiff(a, ra) <= TF_TOL and _maxdiff(b, rb) <= TF_TOL
    full = load_checkpoint(src)
    fa, _ = _teacher_forced(full.model, full.config)
    assert _maxdiff(a, fa) > TF_TOL, "--lora-scale 0.5 gave the full-strength model"


def test_infer_lora_scale_refuses_a_model_without_adapters(paths, tmp_path):
    assert _infer(paths["release_dir"], tmp_path / "out", tmp_path, "--lora-scale", "0.5") != 0
    assert _infer(paths["release_dir"], tmp_path / "out", tmp_path, "--lora-scale", "1") == 0
