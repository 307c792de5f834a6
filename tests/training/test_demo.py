"""The demo's bookends with the real pipeline: synthetic songs -> codebook -> shards -> train -> a song."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from songbloom.training.callbacks import read_step_metrics
from tests.training.conftest import run_flat


@pytest.mark.slow
def test_demo_builds_data_trains_and_generates(compose):
    cfg = compose(
        [
            "experiment=demo",
            "debug=ci",
            "logger=none",
            "trainer.max_steps=3",
            "demo.num_songs=4",
            "demo.song_seconds=[3.0,4.0]",
            "demo.generate_seconds=1.0",
            "data.batch_size=2",
        ]
    )
    result = run_flat(cfg)
    run_dir = Path(result["run_dir"])
    assert sorted(read_step_metrics(run_dir / "metrics.jsonl")) == [1, 2, 3]
    # It trained on shards built by the pipeline.
    assert (Path(cfg.paths.data_dir) / "demo" / "shards" / "index.json").is_file()
    assert (Path(cfg.paths.data_dir) / "demo" / "codebook.safetensors").is_file()
    # every export records the run's training language (text.language; null for the demo) for infer.py
    export = run_dir / "export"
    assert "training_language" in json.loads((export / "config.json").read_text())
    release_meta = next((export / "release").glob("*.export.json"))
    assert "training_language" in json.loads(release_meta.read_text())
    info = sf.info(result["song"])
    assert info.samplerate == 48000 and info.duration > 0
    # Audible, not a clipped DC offset (issue 18): centred, peak at most -1 dBFS, (almost) nothing at full scale.
    audio, _ = sf.read(result["song"], dtype="float64", always_2d=True)
    assert np.abs(audio.mean(axis=0)).max() < 1e-3, f"DC offset {audio.mean(axis=0)} of full scale"
    assert np.abs(audio).max() <= 10 ** (-1 / 20) + 1e-4, f"peak {np.abs(audio).max():.4f} above -1 dBFS"
    assert (np.abs(audio) >= 0.999).mean() < 1e-3, f"{(np.abs(audio) >= 0.999).mean():.1%} of samples at full scale"
