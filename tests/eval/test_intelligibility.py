import pytest
import torch

from songbloom.eval import LyricErrorRateMetric, build_metric, edit_distance, error_rate, normalise_text, tokens
from tests.eval.conftest import tone


@pytest.mark.parametrize(
    ("ref", "hyp", "expected"),
    [("", "", 0), ("abc", "", 3), ("", "ab", 2), ("kitten", "sitting", 3), ("flaw", "lawn", 2), ("abc", "abc", 0)],
)
def test_edit_distance(ref, hyp, expected):
    assert edit_distance(ref, hyp) == expected
    assert edit_distance(hyp, ref) == expected


def test_corpus_error_rate_weights_by_reference_length():
    refs = [["a", "b", "c", "d"], ["e"]]
    hyps = [["a", "b", "c", "d"], ["x"]]
    assert error_rate(refs, hyps) == pytest.approx(1 / 5)  # not the mean of per-utterance rates (0.5)
    with pytest.raises(ValueError, match="undefined"):
        error_rate([[]], [["a"]])


def test_tokens_per_unit():
    assert normalise_text("[verse] Hello, World!") == "hello world"
    assert tokens("[chorus] Hello world.", "word") == ["hello", "world"]
    assert tokens("你好，世界", "char") == ["你", "好", "世", "界"]
    phones = tokens("[verse] hello world", "phoneme", language="en")
    assert phones[:4] == ["HH", "AH0", "L", "OW1"] and "[verse]" not in phones
    assert tokens("hello", "phoneme", language="en", strip_stress=True) == ["HH", "AH", "L", "OW"]


def test_metric_with_a_stub_asr_scores_transcripts():
    heard = iter(["hello world", "good bye moon"])
    seen_rates = []

    def stub_asr(wav, sr):
        seen_rates.append(sr)
        assert wav.ndim == 1 and wav.dtype.name == "float32"
        return next(heard)

    metric = build_metric("lyric_error_rate", asr=stub_asr, unit="word")
    clips = [tone(0.2, 220), torch.stack([tone(0.2, 330)] * 2)]  # mono and stereo
    metric.update(clips, ["[verse] Hello world", "good night moon"], sample_rate=48000)
    result = metric.compute()
    assert result == {"wer": pytest.approx(1 / 5), "wer_utterances": 2.0}  # night -> bye
    assert seen_rates == [48000, 48000]
    assert metric.transcripts[1]["edits"] == 1

    per = LyricErrorRateMetric(lambda wav, sr: "hello word", unit="phoneme", language="en")
    per.update([tone(0.2, 220)], ["hello world"], sample_rate=24000)
    assert 0 < per.compute()["per"] < 0.5


def test_without_asr_the_metric_is_skipped_with_a_reason(caplog):
    metric = LyricErrorRateMetric(None)
    metric.update([tone(0.1, 220)], ["la la"], sample_rate=24000)
    assert metric.compute() == {}
    assert "no ASR model configured" in metric.skipped_reason


def test_missing_asr_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="ASR model directory"):
        LyricErrorRateMetric(tmp_path / "nope")


def test_tiny_local_whisper_through_the_transformers_pipeline(tmp_path):
    from songbloom.eval.tiny_asr import build_tiny_whisper

    model_dir = build_tiny_whisper(tmp_path / "tiny-whisper")
    metric = LyricErrorRateMetric(model_dir, unit="char", generate_kwargs={"max_new_tokens": 6})
    clip = tone(1.0, 220, sr=48000, noise=0.1)
    metric.update([clip, clip], ["la la la", "la la la"], sample_rate=48000)
    result = metric.compute()
    assert result["cer_utterances"] == 2.0 and result["cer"] >= 0.0
    first, second = (t["transcript"] for t in metric.transcripts)
    assert isinstance(first, str) and first == second  # greedy decoding of the same audio is deterministic
