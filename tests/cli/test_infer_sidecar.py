"""Provenance: ``infer.py`` writes ``<song>.json`` beside each song (docs/inference.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from songbloom.cli.infer import main
from tests.cli.test_infer import release_dir  # noqa: F401 - the tiny release-layout fixture

LYRICS = "[verse] n i h ao , [chorus] w o"


def test_each_song_has_a_sidecar_with_checkpoint_seed_sampling_and_lyrics(release_dir, tmp_path: Path):  # noqa: F811
    sr = 48000
    wav = (0.1 * np.sin(np.linspace(0, 2000, sr * 2))).astype(np.float32)
    sf.write(tmp_path / "p.wav", np.stack([wav, wav], 1), sr)
    jsonl = tmp_path / "jobs.jsonl"
    jsonl.write_text(json.dumps({"idx": "a", "lyrics": LYRICS, "prompt_wav": str(tmp_path / "p.wav")}) + "\n")
    out = tmp_path / "out"
    args = ["--input-jsonl", str(jsonl), "--ckpt-path", str(release_dir), "--output-dir", str(out),
            "--n-samples", "2", "--seed", "11", "--steps", "3", "--device", "cpu", "--max-duration", "1.0",
            "--log-level", "WARNING"]  # fmt: skip
    assert main(args) == 0
    for i in range(2):
        sidecar = out / f"a_s{i}.json"
        assert (out / f"a_s{i}.flac").is_file() and sidecar.is_file(), sorted(p.name for p in out.iterdir())
        record = json.loads(sidecar.read_text())
        assert record["seed"] == 11 + i and record["lyrics"] == LYRICS
        assert record["checkpoint"]["ckpt_path"] == str(release_dir)
        assert len(record["checkpoint"]["fingerprint"]) == 16
        assert record["sampling"]["steps"] == 3 and "cfg_coef" in record["sampling"]
        assert record["lora_scale"] == 1.0 and "language" in record
        assert record["songbloom_version"] and record["packages"]["torch"]
    first, second = (json.loads((out / f"a_s{i}.json").read_text()) for i in range(2))
    assert first["checkpoint"]["fingerprint"] == second["checkpoint"]["fingerprint"]
