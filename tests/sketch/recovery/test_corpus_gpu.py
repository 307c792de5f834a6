"""Corpus generation on CUDA in bf16 (CUDA graphs on, MuQ on the GPU): frame-aligned, resumable (skipped without
a GPU)."""

from __future__ import annotations

import pytest
import torch

from songbloom.sketch import MuQFeatureExtractor, build_tiny_muq
from songbloom.sketch.features import to_mono
from songbloom.sketch.recovery import corpus_status, generate_corpus, load_corpus
from tests.sketch.recovery.conftest import corpus_settings, tiny_base


@pytest.mark.gpu
def test_corpus_on_cuda_in_bf16(tmp_path, job_file):
    bundle = tiny_base()
    bundle.model.to("cuda", torch.bfloat16)
    bundle.vae.to("cuda")
    muq = build_tiny_muq(seed=0)
    extractor = MuQFeatureExtractor(muq, device="cuda")
    out = tmp_path / "gpu"
    report = generate_corpus(bundle, job_file, out, extractor, corpus_settings(batch_size=4), progress=False)
    assert report.written + report.skipped_eos == 4 and corpus_status(out).complete
    for s in load_corpus(out, with_audio=True):
        assert s.sketch_ids.shape == (s.num_frames,) and s.latents.shape == (8, s.num_frames)
        assert s.features.shape == (2, s.num_frames, 64) and s.meta["base"]["dtype"] == "bfloat16"
        cpu = MuQFeatureExtractor(muq.to("cpu"), layer=-1).extract_many([to_mono(s.audio)], 48000)[0]
        torch.testing.assert_close(s.features[1], cpu, atol=1e-2, rtol=1e-2)
        muq.to("cuda")
    again = generate_corpus(bundle, job_file, out, extractor, corpus_settings(batch_size=4), progress=False)
    assert again.already_done == 4 and again.written == 0
