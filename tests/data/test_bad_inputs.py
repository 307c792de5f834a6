"""Bad input of many kinds: each item is reported with its file and reason, and every good item still lands."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf

from songbloom.data.preprocess import PreprocessConfig, run_preprocess
from songbloom.data.shards import completed_shards, load_index
from tests.data.standins import toy_encoders

SR = 48000


def _tone(seconds: float, sr: int = SR, channels: int = 2, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)
    return np.stack([x] * channels, axis=1).astype(np.float32)


def test_bad_items_are_reported_and_good_items_land(tmp_path):
    a = tmp_path / "audio"
    a.mkdir()
    sf.write(a / "good_stereo_44k.wav", _tone(3.0, 44100), 44100)
    sf.write(a / "good_mono.flac", _tone(3.0, channels=1, seed=1), SR)
    sf.write(a / "good_inst.wav", _tone(2.0, seed=2), SR)
    sf.write(a / "long.wav", _tone(8.0, seed=3), SR)
    (a / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 10)
    sf.write(a / "empty.wav", np.zeros((0, 2), np.float32), SR)
    nan = _tone(2.0)
    nan[1000:1010] = np.nan
    sf.write(a / "nan.wav", nan, SR, subtype="FLOAT")
    sf.write(a / "lowrate.wav", _tone(2.0, 8000), 8000)
    sf.write(a / "quad.wav", _tone(2.0, channels=4), SR)
    sf.write(a / "silent.wav", np.zeros((2 * SR, 2), np.float32), SR)
    sf.write(a / "short.wav", _tone(0.2), SR)
    frames = 3 * SR // 1920
    lyr = "[verse] AA1 B . K AH0"

    def row(idx, audio, **kw):
        return json.dumps({"idx": idx, "audio_path": f"audio/{audio}", "lyrics": lyr, **kw})

    lines = [
        row("good1", "good_stereo_44k.wav"),
        row(
            "good2",
            "good_mono.flac",
            sections=[
                {"tag": "verse", "start": 0, "end": 2, "text": "AA1 B ."},
                {"tag": "outro", "start": 2, "end": 3},
            ],
        ),
        row("good3", "good_inst.wav", lyrics=None, instrumental=True),
        row("good4", "good_stereo_44k.wav", sketch_tokens=[1] * frames),
        row("missing", "nope.wav"),
        row("corrupt", "corrupt.wav"),
        row("empty", "empty.wav"),
        row("nan", "nan.wav"),
        row("lowrate", "lowrate.wav"),
        row("quad", "quad.wav"),
        '{"idx": "caf\xe9", "audio_path": "audio/good_mono.flac"}',  # replaced by latin-1 bytes below
        '{"idx": "broken", "audio_path": ',
        row("good1", "good_mono.flac"),
        row("badlyrics", "good_mono.flac", lyrics="words without any tag"),
        row("oov", "good_mono.flac", lyrics="[verse] XYZZY QQQ ."),
        row("range", "good_stereo_44k.wav", sketch_tokens=[100] * frames),
        row("mismatch", "good_stereo_44k.wav", sketch_tokens=[1] * (frames + 5)),
        row("silent", "silent.wav"),
        row("nolyrics", "good_mono.flac", lyrics=""),
        row("short", "short.wav"),
        row("nosketchfile", "good_mono.flac", sketch_path="sk/missing.npy"),
        row("beyond", "good_mono.flac", sections=[{"tag": "verse", "start": 0, "end": 9, "text": "AA1 ."}]),
        row("untimed", "long.wav"),
        row("noprompt", "good_mono.flac", prompt_wav="audio/no_prompt.wav"),
        row("lang", "good_mono.flac", language="xx"),
    ]
    raw = [ln.encode("utf-8") for ln in lines]
    raw[10] = lines[10].encode("latin-1")
    manifest = tmp_path / "songs.jsonl"
    manifest.write_bytes(b"\n".join(raw) + b"\n")

    out = tmp_path / "shards"
    cfg = PreprocessConfig(out_dir=str(out), segment_seconds=4.0, min_seconds=0.5)
    report = run_preprocess([manifest], cfg, toy_encoders())

    by_idx = {p.idx: p for p in report.problems if p.idx}
    expected = {
        "missing": ("missing_file", "nope.wav"),
        "corrupt": ("decode_error", "corrupt.wav"),
        "empty": ("empty_audio", "empty.wav"),
        "nan": ("nan_audio", "nan.wav"),
        "lowrate": ("sample_rate", "lowrate.wav"),
        "good1": ("duplicate_idx", "songs.jsonl"),
        "badlyrics": ("invalid_lyrics", "songs.jsonl"),
        "oov": ("oov_lyrics", "songs.jsonl"),
        "range": ("token_range", "good_stereo_44k.wav"),
        "mismatch": ("length_mismatch", "songs.jsonl"),
        "silent": ("silence", "silent.wav"),
        "nolyrics": ("empty_lyrics", "songs.jsonl"),
        "short": ("too_short", "short.wav"),
        "nosketchfile": ("missing_file", "missing.npy"),
        "beyond": ("bad_sections", "songs.jsonl"),
        "untimed": ("untimed_long", "songs.jsonl"),
        "noprompt": ("missing_file", "no_prompt.wav"),
        "lang": ("bad_field", "songs.jsonl"),
    }
    for idx, (kind, file) in expected.items():
        p = by_idx.get(idx)
        assert p is not None, f"{idx} was not reported"
        assert (p.kind, p.file.endswith(file)) == (kind, True), str(p)
        assert p.reason and idx in str(p)
    no_idx = {p.kind for p in report.problems if not p.idx}
    assert no_idx == {"not_utf8", "malformed_json"}
    assert all(p.line is not None for p in report.problems if p.file.endswith("songs.jsonl"))
    assert len({p.kind for p in report.problems}) >= 15

    # every good item landed, once
    keys = [i["idx"] for s in completed_shards(out) for i in s["items"]]
    assert sorted(keys) == ["good1", "good2", "good3", "good4", "quad"]  # 4 channels: downmixed to stereo
    assert report.written == 5
    # the report and the index carry the same account, as JSON
    saved = json.loads((out / "reports" / "task-0000.json").read_text())
    assert saved["skipped_count"] == len(report.problems) == load_index(out)["skipped"]["count"]
    assert saved["skipped_by_kind"]["missing_file"] == 3
    assert "nope.wav" in (out / "reports" / "task-0000.log").read_text()


def test_lyrics_policy_warn_keeps_the_song_and_records_dropped_items(tmp_path):
    sf.write(tmp_path / "a.wav", _tone(2.0), SR)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"idx": "a", "audio_path": "a.wav", "lyrics": "[verse] AA1 XYZZY ."}) + "\n")
    cfg = PreprocessConfig(out_dir=str(tmp_path / "out"), lyrics_policy="warn")
    report = run_preprocess([manifest], cfg, toy_encoders(policy="warn"))
    assert report.written == 1 and not report.problems
    from songbloom.data.shards import decode_sample, iter_tar_samples

    (sample,) = [decode_sample(r) for r in iter_tar_samples([str(p) for p in (tmp_path / "out").glob("*.tar")])]
    assert sample["meta"]["dropped_lyric_items"] == ["XYZZY"]
    assert sample["meta"]["prompt"]["rule"] == "inside_fallback"
