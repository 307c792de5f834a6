"""Frame rule: MuQ frame i is VAE frame i, F = T_48k // 1920, for lengths on and off the hop grid."""

from __future__ import annotations

import pytest
import torch
import torchaudio.functional as AF

from songbloom.sketch import MuQFeatureExtractor, align_to_vae_frames, num_muq_frames, num_vae_frames

# Lengths at 48 kHz: multiples of the hop, one sample off either side, and sub-frame clips.
LENGTHS_48K = [1920 * 50, 1920 * 50 - 1, 1920 * 50 + 1, 1920 * 50 + 959, 1920 * 50 + 960, 1920 * 50 + 1919,
               1920, 1919, 3839, 100]


@pytest.mark.parametrize("sr", [48000, 44100, 24000, 16000])
@pytest.mark.parametrize("t48", LENGTHS_48K)
def test_vae_frame_count_matches_resampled_48k(sr, t48):
    num = t48 * sr // 48000 + (1 if sr == 44100 else 0)  # also lengths that do not map to whole 48 kHz samples
    t48_actual = AF.resample(torch.zeros(num), sr, 48000).shape[-1] if sr != 48000 else num
    assert num_vae_frames(num, sr) == t48_actual // 1920


@pytest.mark.parametrize("sr", [48000, 44100, 24000])
@pytest.mark.parametrize("t48", LENGTHS_48K)
def test_muq_gives_f_or_f_plus_one_frames(sr, t48):
    num = t48 * sr // 48000
    t24 = AF.resample(torch.zeros(num), sr, 24000).shape[-1] if sr != 24000 else num
    f = num_vae_frames(num, sr)
    assert num_muq_frames(t24) in (f, f + 1)


def test_muq_frame_formula_matches_real_forward(tiny_muq):
    for t24 in [2048, 24000 * 3, 24000 * 3 + 239, 24000 * 3 + 240, 24000 * 3 + 959, 24000 * 3 + 960]:
        with torch.no_grad():
            out = tiny_muq(torch.randn(1, t24), output_hidden_states=True)
        assert out.last_hidden_state.shape[1] == num_muq_frames(t24), t24


@pytest.mark.parametrize("sr", [48000, 44100, 24000])
def test_extractor_returns_exactly_the_vae_frame_count(tiny_muq, sr):
    ext = MuQFeatureExtractor(tiny_muq)
    lengths = [sr * 2, sr * 2 + 1, sr * 2 - 1, sr * 2 + sr // 50, sr // 25, sr // 25 - 1, sr // 10 + 7]
    feats = ext.extract_many([torch.randn(n) * 0.1 for n in lengths], sr)
    for n, f in zip(lengths, feats):
        assert f.shape == (n * 25 // sr, 64), (n, f.shape)
    batched = ext.extract(torch.randn(3, sr * 2 + 123) * 0.1, sr)
    assert batched.shape == (3, 50, 64)


def test_single_window_equals_plain_muq_forward_trimmed(tiny_muq):
    wav = torch.randn(24000 * 3 + 500) * 0.1  # 75 VAE frames, MuQ gives 76
    ext = MuQFeatureExtractor(tiny_muq, layer=-1)
    with torch.no_grad():
        ref = tiny_muq(wav[None], output_hidden_states=True).last_hidden_state[0]
    assert ref.shape[0] == 76
    got = ext.extract(wav, 24000)[0]
    assert got.shape[0] == 75
    torch.testing.assert_close(got, ref[:75])  # trim drops the trailing partial frame, nothing shifts


def test_chunk_windows_keep_global_frame_positions(tiny_muq):
    """Layer 0 is local (conv front end), so chunking with context must reproduce the one-pass features."""
    wav = torch.randn(24000 * 6 + 333) * 0.1
    one_pass = MuQFeatureExtractor(tiny_muq, layer=0, chunk_seconds=100).extract(wav, 24000)[0]
    chunked = MuQFeatureExtractor(tiny_muq, layer=0, chunk_seconds=1.0, context_seconds=0.4).extract(wav, 24000)[0]
    assert chunked.shape == one_pass.shape == (150, 64)
    torch.testing.assert_close(chunked, one_pass, atol=1e-4, rtol=1e-4)
    shifted = torch.roll(one_pass, 1, dims=0)
    assert not torch.allclose(chunked[1:], shifted[1:], atol=1e-3)  # a one-frame slip would be caught


def test_chunked_last_layer_has_exact_length(tiny_muq):
    wav = torch.randn(24000 * 5 + 17) * 0.1
    feats = MuQFeatureExtractor(tiny_muq, chunk_seconds=1.0, context_seconds=0.5, batch_size=3).extract(wav, 24000)
    assert feats.shape == (1, 125, 64)
    assert torch.isfinite(feats).all()


def test_align_to_vae_frames_trims_and_reports_padding():
    x = torch.arange(10.0)[:, None]
    trimmed, padded = align_to_vae_frames(x, 8)
    assert padded == 0 and trimmed[:, 0].tolist() == list(range(8))
    longer, padded = align_to_vae_frames(x, 12)
    assert padded == 2 and longer[-3:, 0].tolist() == [9.0, 9.0, 9.0]
    with pytest.raises(ValueError):
        align_to_vae_frames(torch.zeros(0, 3), 2)


def test_layer_out_of_range_is_refused(tiny_muq):
    with pytest.raises(ValueError, match="layer 3 out of range"):
        MuQFeatureExtractor(tiny_muq, layer=3)
    assert MuQFeatureExtractor(tiny_muq, layer=-1).layer == 2
