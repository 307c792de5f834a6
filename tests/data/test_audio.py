"""Audio loading: channel handling (issue 18: files with more than two channels are downmixed, not refused)."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from songbloom.data.audio import AudioError, load_audio

SR = 48000


def _load(path, channels=2):
    try:
        return load_audio(path, SR, channels)
    except AudioError as e:  # reported as an assertion below, so the old refusal fails the test, not errors it
        return str(e)


def test_multichannel_is_downmixed_to_stereo_by_the_stated_rule(tmp_path):
    # 5.1 in WAV order (FL, FR, C, LFE, SL, SR), each channel a distinct constant level.
    levels = np.array([0.5, -0.4, 0.3, 0.1, -0.2, 0.25], dtype=np.float32)
    data = np.tile(levels, (SR // 10, 1))
    sf.write(tmp_path / "six.wav", data, SR, subtype="FLOAT")
    loaded = _load(tmp_path / "six.wav")
    assert not isinstance(loaded, str), f"6-channel file refused: {loaded}"
    assert loaded.orig_channels == 6 and tuple(loaded.wav.shape) == (2, SR // 10)
    # Rule (docs/data.md): L = (FL + g * sum(rest)) / (1 + g * 4), R likewise with FR, g = 1/sqrt(2).
    g = 1 / np.sqrt(2)
    rest = levels[2:].sum() * g
    expect = np.array([(levels[0] + rest), (levels[1] + rest)]) / (1 + g * 4)
    np.testing.assert_allclose(loaded.wav[:, 100].numpy(), expect, atol=1e-6)
    assert float(loaded.wav.abs().max()) <= float(np.abs(levels).max()) + 1e-6  # the mix cannot clip


def test_three_channels_and_mono_as_stated(tmp_path):
    tri = np.tile(np.array([0.6, 0.0, -0.6], dtype=np.float32), (SR // 10, 1))
    sf.write(tmp_path / "tri.wav", tri, SR, subtype="FLOAT")
    loaded = _load(tmp_path / "tri.wav")
    assert not isinstance(loaded, str), f"3-channel file refused: {loaded}"
    g = 1 / np.sqrt(2)
    np.testing.assert_allclose(
        loaded.wav[:, 0].numpy(), [(0.6 - 0.6 * g) / (1 + g), (0.0 - 0.6 * g) / (1 + g)], atol=1e-6
    )
    mono = np.full((SR // 10, 1), 0.3, dtype=np.float32)
    sf.write(tmp_path / "mono.wav", mono, SR, subtype="FLOAT")
    m = _load(tmp_path / "mono.wav")
    assert m.orig_channels == 1 and tuple(m.wav.shape) == (2, SR // 10)
    np.testing.assert_allclose(m.wav[:, 0].numpy(), [0.3, 0.3], atol=1e-6)
    # a one-channel target (the prompt path) still averages whatever came in
    one = _load(tmp_path / "six.wav" if (tmp_path / "six.wav").exists() else tmp_path / "tri.wav", channels=1)
    assert not isinstance(one, str) and one.wav.shape[0] == 1
