"""Fixtures of the corpus tests: a tiny base model that sometimes ends early, a tiny random MuQ, a job file, and
one uninterrupted single-task corpus to compare resumed and split runs with."""

from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from songbloom.checkpoints.bundle import SongBloom
from songbloom.config import SongBloomConfig
from songbloom.inference.generate import SamplingParams
from songbloom.models.vae import VAEConfig
from songbloom.sketch import build_tiny_muq
from songbloom.sketch.recovery import CorpusSettings, generate_corpus

SEED = 30
MAX_FRAMES = 40  # at most 10 patches of 4 frames: short songs, fast tests
# The EOS logit bias of the test model: songs end at different lengths and some in the first patch (skipped).
EOS_BIAS = 0.3
LINES = [
    {"idx": "a", "lyrics": "[verse] こんにちは せかい", "prompt_wav": "p0.wav"},
    {"idx": "b", "lyrics": "[chorus] うたを うたおう", "prompt_wav": "p1.wav"},
    {"idx": "c", "lyrics": "[verse] ない", "prompt_wav": "missing.wav"},  # not found: a plan problem, no songs
]


@contextmanager
def one_thread():
    """Session fixtures are built before the autouse per-test thread setting; they use one thread as well, so
    every run in these tests computes with the same kernels."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread):
    """Tiny models in this directory run on one torch thread (see tests/conftest.py)."""


def tiny_base(eos_bias: float = EOS_BIAS) -> SongBloom:
    torch.manual_seed(0)
    cfg = SongBloomConfig.from_name("tiny")
    bundle = SongBloom.from_config(cfg, VAEConfig.tiny())
    with torch.no_grad():
        bundle.model.skeleton_classifier[-1].bias[cfg.model.eos_id] = eos_bias
    return bundle


def corpus_settings(**overrides) -> CorpusSettings:
    cfg = SongBloomConfig.from_name("tiny")
    kw = {
        "songs_per_request": 2,
        "seed": SEED,
        "layers": (0, -1),
        "params": SamplingParams(cfg.inference, max_frames=MAX_FRAMES),
        "batch_size": 2,
        "language": "ja",
        "feature_dtype": "float32",
    }
    kw.update(overrides)
    return CorpusSettings(**kw)


@pytest.fixture(scope="session")
def base_bundle() -> SongBloom:
    return tiny_base()


@pytest.fixture(scope="session")
def corpus_muq():
    return build_tiny_muq(seed=0)


@pytest.fixture(scope="session")
def job_file(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("jobs")
    rng = np.random.default_rng(0)
    sf.write(d / "p0.wav", (0.1 * rng.standard_normal((66150, 2))).astype(np.float32), 44100)  # 1.5 s stereo
    sf.write(d / "p1.wav", (0.1 * rng.standard_normal(48000)).astype(np.float32), 48000)
    path = d / "jobs.jsonl"
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in LINES), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def reference_corpus(tmp_path_factory, base_bundle, corpus_muq, job_file) -> Path:
    """One uninterrupted single-task run with the default test settings."""
    out = tmp_path_factory.mktemp("reference") / "corpus"
    with one_thread():
        generate_corpus(base_bundle, job_file, out, corpus_muq, corpus_settings(), task_index=0, num_tasks=1,
                        progress=False)
    return out


def copy_corpus(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
