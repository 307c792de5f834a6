"""The same extraction and k-means on CUDA agree with the CPU (skipped without a GPU)."""

from __future__ import annotations

import pytest
import torch

from songbloom.sketch import MiniBatchKMeans, MuQFeatureExtractor
from songbloom.sketch.kmeans import nearest_code


@pytest.mark.gpu
def test_cuda_features_match_cpu(tiny_muq):
    wav = torch.randn(24000 * 3 + 77) * 0.1
    cpu = MuQFeatureExtractor(tiny_muq, device="cpu").extract(wav, 24000)
    gpu = MuQFeatureExtractor(tiny_muq, device="cuda").extract(wav, 24000)
    tiny_muq.to("cpu")
    assert gpu.device.type == "cpu" and gpu.shape == cpu.shape == (1, 75, 64)
    torch.testing.assert_close(gpu, cpu, atol=1e-3, rtol=1e-3)


@pytest.mark.gpu
def test_cuda_kmeans_matches_cpu():
    x = torch.randn(2048, 32, generator=torch.Generator().manual_seed(0))
    results = []
    for device in ("cpu", "cuda"):
        km = MiniBatchKMeans(16, 32, seed=0, device=device, reseed_every=0)
        km.init_random(x)
        for s in range(0, 2048, 256):
            km.partial_fit(x[s : s + 256])
        results.append(nearest_code(x, km.centers.cpu())[0])
    assert (results[0] == results[1]).float().mean() > 0.99


@pytest.mark.gpu
def test_cuda_tokenizer_kinds_match_cpu():
    """Both tokenizer kinds give the CPU's ids (and top-k) on CUDA, with the codebook moved there once."""
    from songbloom.sketch import SketchCodebook, SketchTokenizer

    g = torch.Generator().manual_seed(1)
    w, b, x = torch.randn(32, 16, generator=g), torch.randn(32, generator=g), torch.randn(2, 500, 16, generator=g)
    kw = dict(muq_model_id="toy", muq_fingerprint="toy", muq_layer=1, muq_licence="CC-BY-NC-4.0",
              feature_normalisation="standardize")
    for codebook in (SketchCodebook.linear_probe(w, b, torch.zeros(16), torch.ones(16), **kw),
                     SketchCodebook.nearest_centroid(w, torch.zeros(16), torch.ones(16), **kw)):
        cpu, gpu = SketchTokenizer(codebook), SketchTokenizer(codebook, device="cuda")
        ids = gpu.tokenize_features(x)
        assert ids.device.type == "cpu" and (ids == cpu.tokenize_features(x)).float().mean() > 0.99
        assert (gpu.topk_features(x, 3) == cpu.topk_features(x, 3)).float().mean() > 0.99
