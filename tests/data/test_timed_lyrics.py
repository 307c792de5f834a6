"""Timed lyrics end to end (issue 18): LRC line timings survive conversion, preprocessing and training crops.

The window rule (songbloom.data.lyrics): a timed line belongs to the window that contains its midpoint, so a
line straddling a window's edge goes whole to the side where most of it is sung (at exactly half: the later
window); consecutive windows share no line and lose none. Segments and training crops apply the same rule.
"""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf

from songbloom.data.convert import convert_folder
from songbloom.data.lyrics import crop_sections, sections_to_lyrics
from songbloom.data.manifest import read_manifest
from songbloom.data.preprocess import PreprocessConfig, run_preprocess
from songbloom.data.shards import decode_sample, iter_tar_samples
from songbloom.data.streams import crop
from songbloom.text.vocab import Vocabulary
from tests.data.standins import toy_encoders

SR = 48000
FPS = 25.0
SONG_S = 240.0
STEP_S = 3.0
CONSONANTS = ["B", "D", "F", "G", "K", "L", "M", "N", "P", "S"]
VOWELS = ["AA1", "AE1", "AH0", "AO1", "AW1", "AY1", "EH1", "ER0", "EY1", "IH1"]


def _line(k: int) -> str:
    return f"{CONSONANTS[k // 10]} {VOWELS[k % 10]}"


N_LINES = int(SONG_S / STEP_S)  # a line every 3 s, from 0 s to 237 s; each lasts until the next


def _expected_ids(vocab: Vocabulary, lo: float, hi: float) -> list[int]:
    """The lyric ids of exactly the lines whose midpoint is inside [lo, hi) (the song is one verse)."""
    inside = [_line(k) for k in range(N_LINES) if lo <= k * STEP_S + STEP_S / 2 < hi]
    return vocab.tokenize("[verse] " + " . ".join(inside) + " .").ids if inside else []


def _song(tmp_path):
    src = tmp_path / "songs"
    src.mkdir()
    t = np.arange(int(SONG_S * SR)) / SR
    x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.02 * np.random.default_rng(0).standard_normal(t.size)
    sf.write(src / "song.wav", np.stack([x, x], 1).astype(np.float32), SR)
    lrc = "\n".join(f"[{int(k * STEP_S) // 60:02d}:{k * STEP_S % 60:05.2f}]{_line(k)}" for k in range(N_LINES))
    (src / "song.lrc").write_text("[ti:every three seconds]\n" + lrc + "\n", encoding="utf-8")
    manifest, problems = convert_folder(src, tmp_path / "songs.jsonl", language="en", license="test")
    assert not problems
    return manifest


def _samples(out):
    return [decode_sample(r) for r in iter_tar_samples(sorted(str(p) for p in out.glob("*.tar")))]


def test_lrc_line_every_3s_each_segment_gets_exactly_its_lines(tmp_path):
    manifest = _song(tmp_path)
    row = json.loads(manifest.read_text(encoding="utf-8").splitlines()[0])
    lines = [ln for s in row["sections"] for ln in s.get("lines", [])]
    assert [(ln["start"], ln["end"], ln["text"]) for ln in lines] == [
        (k * STEP_S, k * STEP_S + STEP_S, _line(k)) for k in range(N_LINES)
    ], "LRC line timings must survive conversion"

    out = tmp_path / "shards"
    report = run_preprocess([manifest], PreprocessConfig(out_dir=str(out), segment_seconds=150.0), toy_encoders())
    samples = sorted(_samples(out), key=lambda s: s["meta"]["segment"])
    assert report.to_json()["skipped_count"] == 0 and len(samples) == 2  # 2 block-aligned segments of ~120 s
    vocab = Vocabulary.default()
    seen = []
    for s in samples:
        meta = s["meta"]
        lo, hi = meta["start_s"], meta["start_s"] + meta["duration_s"]
        assert s["lyric_ids"].tolist() == _expected_ids(vocab, lo, hi), f"segment {meta['segment']} ({lo}-{hi} s)"
        inside = [k for k in range(N_LINES) if lo <= k * STEP_S + STEP_S / 2 < hi]
        seen += inside
        # preprocessing reports what each segment sings
        assert meta.get("lyric_lines") == len(inside)
        vocal = sum(min(k * STEP_S + STEP_S, hi) - max(k * STEP_S, lo) for k in inside)
        assert abs(meta.get("vocal_seconds", -1) - vocal) < 1e-2
    assert seen == list(range(N_LINES)), "every line lands in exactly one segment"
    # the line 120-123 s straddles the boundary at 120.32 s: its midpoint (121.5 s) puts it in segment 1
    assert samples[0]["meta"]["start_s"] + samples[0]["meta"]["duration_s"] == 120.32
    assert _line(40) not in " ".join(vocab.items[i] for i in samples[0]["lyric_ids"].tolist()[-3:])
    segs = {e["key"]: e for e in report.to_json().get("segments", [])}
    assert sorted(e["lyric_lines"] for e in segs.values()) == sorted(s["meta"]["lyric_lines"] for s in samples)


def test_training_crops_take_exactly_the_lines_inside_them(tmp_path):
    manifest = _song(tmp_path)
    out = tmp_path / "shards"
    run_preprocess([manifest], PreprocessConfig(out_dir=str(out), segment_seconds=150.0), toy_encoders())
    vocab = Vocabulary.default()
    rng = np.random.default_rng(0)
    for s in _samples(out):
        seg_start = s["meta"]["start_s"]
        for _ in range(6):
            item = crop(s, max_frames=1000, block_size=16, seconds_per_tag=1.0, rng=rng)  # 40 s crops
            lo = seg_start + item["crop_start"] / FPS
            hi = lo + item["latent_mean"].shape[-1] / FPS
            assert item["lyric_ids"] == _expected_ids(vocab, lo, hi), f"crop {lo:.2f}-{hi:.2f} s"


def test_window_rule_for_a_line_that_straddles_the_window(tmp_path):
    # manifest sections with timed lines: a line 10-14 s; windows split at 12 s (exactly half), 11 s and 13 s
    row = {
        "idx": "x",
        "audio_path": "x.wav",
        "sections": [
            {
                "tag": "verse",
                "start": 0.0,
                "end": 14.0,
                "text": "B AA1 . D AE1 .",
                "lines": [{"start": 0.0, "end": 10.0, "text": "B AA1"}, {"start": 10.0, "end": 14.0, "text": "D AE1"}],
            }
        ],
    }
    (tmp_path / "m.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    records, problems = read_manifest(tmp_path / "m.jsonl")
    assert not problems
    secs = records[0].sections

    def lyr(lo, hi):
        return sections_to_lyrics(crop_sections(secs, lo, hi), 1.0)

    assert lyr(0.0, 12.0) == "[verse] B AA1 ."  # midpoint 12 is not inside [0, 12)
    assert lyr(12.0, 30.0) == "[verse] D AE1 ."  # ... it is inside [12, 30): the later window
    assert lyr(0.0, 13.0) == "[verse] B AA1 . D AE1 ."  # 3 of its 4 s inside: whole line
    assert lyr(11.0, 30.0) == "[verse] D AE1 ."
    assert lyr(13.0, 30.0) == ""  # only 1 s of it inside: none


def test_segment_with_more_lyric_tokens_than_the_model_reads_is_skipped_and_reported(tmp_path):
    manifest = _song(tmp_path)
    out = tmp_path / "shards"
    cfg = PreprocessConfig(out_dir=str(out), segment_seconds=150.0, lyric_max_len=50)
    report = run_preprocess([manifest], cfg, toy_encoders()).to_json()
    assert report["written_samples"] == 0 and report["skipped_by_kind"] == {"lyrics_too_long": 2}
    assert all("lyric tokens but the model reads 50" in p["reason"] for p in report["skipped"])
