"""Several MuQ layers from one forward: each slice equals the single-layer extractor, chunked or not."""

from __future__ import annotations

import pytest
import torch

from songbloom.sketch import MuQFeatureExtractor


@pytest.mark.parametrize("chunk_seconds", [100.0, 1.0])
def test_each_layer_slice_equals_the_single_layer_extractor(tiny_muq, chunk_seconds):
    gen = torch.Generator().manual_seed(0)
    wavs = [torch.randn(n, generator=gen) * 0.1 for n in (48000 * 3 + 77, 48000, 1919, 48000 * 2)]
    kw = {"chunk_seconds": chunk_seconds, "context_seconds": 0.4, "batch_size": 3}
    multi = MuQFeatureExtractor(tiny_muq, layers=(2, 0, 1), **kw).extract_many_layers(wavs, 48000)
    for layer_pos, layer in enumerate((2, 0, 1)):
        single = MuQFeatureExtractor(tiny_muq, layer=layer, **kw).extract_many(wavs, 48000)
        for m, s, wav in zip(multi, single, wavs, strict=True):
            assert m.shape == (wav.shape[0] * 25 // 48000, 3, 64)
            assert torch.equal(m[:, layer_pos], s), (layer, wav.shape)
    # The layers differ (a slip in the stacking order would be caught above).
    assert not torch.allclose(multi[0][:, 0], multi[0][:, 1])


def test_one_forward_per_window_serves_every_layer(tiny_muq, monkeypatch):
    calls = []
    original = tiny_muq.forward

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(tiny_muq, "forward", counting)
    ext = MuQFeatureExtractor(tiny_muq, batch_size=8)
    ext.extract_many_layers([torch.randn(48000) * 0.1] * 2, 48000, layers=(0, 1, 2))
    assert len(calls) == 1


def test_layers_default_to_the_constructor_and_are_checked(tiny_muq):
    ext = MuQFeatureExtractor(tiny_muq, layer=0, layers=(-1, 1))
    assert ext.layers == (2, 1) and ext.layer == 0
    assert MuQFeatureExtractor(tiny_muq, layer=-1).layers == (2,)
    assert ext.extract_many_layers([torch.randn(4800)], 48000)[0].shape == (2, 2, 64)
    assert ext.extract_many_layers([torch.zeros(10)], 48000)[0].shape == (0, 2, 64)
    with pytest.raises(ValueError, match="layer 3 out of range"):
        ext.check_layers((0, 3))
    with pytest.raises(ValueError, match="same hidden state twice"):
        ext.check_layers((2, -1))
    with pytest.raises(ValueError, match="non-empty"):
        ext.check_layers(())
