import pytest
import torch

from songbloom.eval import (
    AudioSimilarityMetric,
    FADMetric,
    GaussianStats,
    MelStatsEmbedder,
    MuLanAudioAudioMetric,
    MuLanScorer,
    MuLanTextAudioMetric,
    MuQEmbedder,
    build_metric,
    build_tiny_mulan,
)
from tests.eval.conftest import tone


def _set(freqs, seconds=1.0, seed=0):
    return [tone(seconds, f, noise=0.05, seed=seed + i) for i, f in enumerate(freqs)]


def test_fad_is_zero_for_identical_sets_and_grows_with_a_different_set():
    ref = _set([220, 330, 440, 550])
    metric = build_metric("fad", embedder="mel")
    metric.update(generated=ref, reference=ref, sample_rate=24000)
    same = metric.compute()
    assert same["fad"] == pytest.approx(0.0, abs=1e-6)
    assert same["fad_generated_frames"] == same["fad_reference_frames"] > 0
    close, far = FADMetric("mel"), FADMetric("mel")
    close.update(generated=_set([225, 335, 445, 555], seed=10), reference=ref, sample_rate=24000)
    far.update(generated=[torch.randn(24000, generator=torch.Generator().manual_seed(i)) for i in range(4)],
               reference=ref, sample_rate=24000)
    assert 0 < close.compute()["fad"] < far.compute()["fad"]


def test_fad_with_fixed_reference_statistics(tmp_path):
    ref, gen = _set([220, 330, 440]), _set([300, 600, 900], seed=5)
    emb = MelStatsEmbedder()
    stats = GaussianStats.empty(emb.dim)
    for f in emb.embed(ref, 24000):
        stats.add(f)
    stats.save(tmp_path / "ref.npz")
    fixed = FADMetric(emb, reference_stats=tmp_path / "ref.npz")
    fixed.update(generated=gen, sample_rate=24000)
    direct = FADMetric(emb)
    direct.update(generated=gen, reference=ref, sample_rate=24000)
    assert fixed.compute()["fad"] == pytest.approx(direct.compute()["fad"], rel=1e-9)
    with pytest.raises(ValueError, match="fixed reference"):
        fixed.update(generated=gen, reference=ref, sample_rate=24000)


def test_fad_on_tiny_muq_features(tiny_muq):
    ref = _set([220, 440, 660], seconds=0.6)
    metric = FADMetric(MuQEmbedder(tiny_muq))
    metric.update(generated=ref, reference=ref, sample_rate=24000)
    assert metric.compute()["fad"] == pytest.approx(0.0, abs=1e-6)
    metric.reset()
    metric.update(generated=[torch.randn(14400) for _ in range(3)], reference=ref, sample_rate=24000)
    assert metric.compute()["fad"] > 0.0
    assert metric.embedder.dim == 64  # tiny MuQ width


def test_audio_similarity_pairs_clips(tiny_muq):
    a = _set([220, 440], seconds=0.6)
    metric = AudioSimilarityMetric(MuQEmbedder(tiny_muq))
    metric.update(a, a, sample_rate=24000)
    assert metric.compute()["audio_similarity"] == pytest.approx(1.0, abs=1e-5)
    metric.reset()
    metric.update(a, [torch.randn(14400), torch.zeros(14400)], sample_rate=24000)
    assert metric.compute()["audio_similarity"] < 0.999
    with pytest.raises(ValueError, match="pairs clips"):
        metric.update(a, a[:1], sample_rate=24000)


@pytest.fixture(scope="module")
def tiny_mulan(tmp_path_factory):
    out = tmp_path_factory.mktemp("mulan")
    return build_tiny_mulan(out, seed=0), out / "mulan"


def test_mulan_text_and_audio_similarity_on_a_tiny_offline_model(tiny_mulan):
    model, saved = tiny_mulan
    scorer = MuLanScorer(model)
    clips = _set([220, 440], seconds=2.5)
    text_metric = MuLanTextAudioMetric(scorer)
    text_metric.update(clips, ["sad piano song", "happy rock guitar"], sample_rate=48000)
    result = text_metric.compute()
    assert result["mulan_text_audio_count"] == 2 and -1.0 <= result["mulan_text_audio"] <= 1.0
    audio_metric = MuLanAudioAudioMetric(scorer)
    audio_metric.update(clips, clips, sample_rate=48000)
    assert audio_metric.compute()["mulan_audio_audio"] == pytest.approx(1.0, abs=1e-5)  # l2-normalised latents
    # Reloading from the saved folder gives the same text latents: the config points at the local towers.
    reloaded = MuLanScorer(saved)
    torch.testing.assert_close(reloaded.text_latents(["sad piano song"]), scorer.text_latents(["sad piano song"]))
