"""Fixtures shared by the sketch tests: one tiny random MuQ saved to disk, and synthetic timbre audio."""

from __future__ import annotations

import pytest

from tests.sketch.synth import make_timbre_set, write_clips

SR = 24000


@pytest.fixture(scope="session")
def tiny_muq_dir(tmp_path_factory):
    from songbloom.sketch import build_tiny_muq

    out = tmp_path_factory.mktemp("tiny_muq")
    build_tiny_muq(seed=0, out_dir=out)
    return out


@pytest.fixture(scope="session")
def tiny_muq(tiny_muq_dir):
    from songbloom.sketch import load_muq

    return load_muq(tiny_muq_dir)


@pytest.fixture(scope="session")
def timbre_audio_dirs(tmp_path_factory):
    """Train (3 clips x 4 timbres x 2 s) and held-out (1 clip per timbre) folders of wav files."""
    root = tmp_path_factory.mktemp("timbres")
    train = write_clips(root / "train", make_timbre_set(3, 2.0, SR, seed=0), SR)
    held = write_clips(root / "heldout", make_timbre_set(1, 2.0, SR, seed=1), SR, prefix="held")
    return root / "train", root / "heldout", train, held
