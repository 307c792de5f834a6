"""jaCappella bootstrap on a tiny generated copy of the corpus layout: download (mocked), scat filter, timing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from songbloom.data.jacappella import REPO_ID, DownloadError, allow_patterns, download_jacappella
from songbloom.data.manifest import read_manifest
from songbloom.data.musicxml_timing import timed_phrases

REPO = Path(__file__).resolve().parents[2]


def _note(text: str | None, dur: int, *, chord=False, voice="1", breath=False) -> str:
    lyric = f"<lyric><syllabic>single</syllabic><text>{text}</text></lyric>" if text else ""
    notations = "<notations><articulations><breath-mark/></articulations></notations>" if breath else ""
    return (
        f"<note>{'<chord/>' if chord else ''}<pitch><step>C</step><octave>4</octave></pitch>"
        f"<duration>{dur}</duration><voice>{voice}</voice>{lyric}{notations}</note>"
    )


def _rest(dur: int, voice="1") -> str:
    return f"<note><rest/><duration>{dur}</duration><voice>{voice}</voice></note>"


def _score(*measures: str, part_name="Lead") -> str:
    body = "".join(f'<measure number="{i + 1}">{m}</measure>' for i, m in enumerate(measures))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<score-partwise version="3.1">'
        f'<part-list><score-part id="P1"><part-name>{part_name}</part-name></score-part></part-list>'
        f'<part id="P1">{body}</part></score-partwise>'
    )


# divisions 2, 90 BPM (a quarter = 2/3 s), a melisma, a chord note, a second voice, a long rest, then a
# metronome change to half = 60 (quarter = 0.5 s).
SONG_A = _score(
    "<attributes><divisions>2</divisions></attributes>"
    '<direction><direction-type><words>Moderato</words></direction-type><sound tempo="90"/></direction>'
    + _note("か", 2)
    + _note("え", 2)
    + _note(None, 2, chord=True)
    + _note("る", 2)
    + _note(None, 2)
    + _rest(2),
    _note("の", 4) + _note("う", 4) + "<backup><duration>8</duration></backup>" + _note(None, 8, voice="2"),
    _rest(8),
    "<direction><direction-type><metronome><beat-unit>half</beat-unit><per-minute>60</per-minute></metronome>"
    "</direction-type></direction>" + _note("た", 2) + _note("ぬ", 2) + _note("き", 2),
)
SONG_B_SCAT = _score(_note("du", 1) + _note("ba", 1) + _rest(1) + _note("du", 1))
SONG_C_MIXED = _score(
    _note("さ", 1) + _note("く", 1) + _note("ら", 1) + _rest(1) + _note("du", 1) + _note("bi", 1) + _note("du", 1),
    _rest(1) + _note("は", 1) + _note("な", 1),
)


def _wav(path: Path, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(48000 * seconds)) / 48000
    sf.write(path, (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 48000)


def make_layout(root: Path) -> None:
    """The corpus layout: <subset>/<song>/{lead_vocal.wav, mixture.wav, <song>_SVS.musicxml, meta.csv}."""
    for subset, song, seconds, score in (
        ("jazz", "usagi", 12.0, SONG_A),
        ("punk_rock", "scat", 3.0, SONG_B_SCAT),
        ("popular", "sakura", 6.0, SONG_C_MIXED),
    ):
        d = root / subset / song
        _wav(d / "lead_vocal.wav", seconds)
        _wav(d / "mixture.wav", seconds)
        (d / f"{song}_SVS.musicxml").write_text(score, encoding="utf-8")
        (d / "meta.csv").write_text("part,singer\nlead_vocal,A\n", encoding="utf-8")
    _wav(root / "popular" / "noscore" / "lead_vocal.wav", 2.0)


def _script():
    import songbloom.cli.convert_jacappella as mod

    return mod


def test_musicxml_timing_follows_divisions_tempo_and_voices(tmp_path):
    p = tmp_path / "a.musicxml"
    p.write_text(SONG_A, encoding="utf-8")
    score = timed_phrases(p)
    got = [(ph.text, round(ph.start, 4), round(ph.end, 4)) for ph in score.phrases]
    assert got == [("かえる", 0.0, 2.6667), ("のう", 3.3333, 6.0), ("たぬき", 8.6667, 10.1667)]
    assert score.tempo_marks == [(0.0, 90.0), (13.0, 120.0)]  # quarter 13: after 5 + 4 + 4 quarters


def test_local_copy_to_timed_manifest_with_scat_report(tmp_path):
    root = tmp_path / "jacappella"
    make_layout(root)
    out = tmp_path / "ja.jsonl"
    assert _script().main([str(root), "--out", str(out), "--gap-seconds", "2"]) == 0
    recs, problems = read_manifest(out)
    assert not problems
    by_id = {r.idx: r for r in recs}
    assert sorted(by_id) == ["jacappella__jazz__usagi", "jacappella__popular__sakura"]
    usagi = by_id["jacappella__jazz__usagi"]
    assert usagi.lyrics == "[verse] かえる. のう. たぬき." and usagi.license == "jaCappella-research"
    assert [(s.tag, round(s.start, 3), round(s.end, 3), s.text) for s in usagi.sections] == [
        ("verse", 0.0, 6.0, "かえる . のう ."),
        ("inst", 6.0, 8.667, ""),
        ("verse", 8.667, 10.167, "たぬき ."),
        ("outro", 10.167, 12.0, ""),
    ]
    sakura = by_id["jacappella__popular__sakura"]
    assert sakura.lyrics == "[verse] さくら. はな."  # the scat phrase "dubidu" is not lyrics
    # the scat phrase's 2.5 s (>= --gap-seconds 2) becomes an [inst] section between the lyric phrases
    assert [(s.tag, s.start, s.end) for s in sakura.sections] == [
        ("verse", 0.0, 1.5),
        ("inst", 1.5, 4.0),
        ("verse", 4.0, 5.0),
        ("outro", 5.0, 6.0),
    ]
    report = json.loads(Path(str(out) + ".report.json").read_text(encoding="utf-8"))
    assert report["counts"] == {"songs_seen": 4, "kept": 2, "scat_only": 1, "other_problems": 1}
    assert "kana or kanji" in report["rule"]
    scat = next(s for s in report["songs"] if not s["kept"])
    assert scat["idx"] == "jacappella__punk_rock__scat" and scat["lyric_syllables"] == 0 and scat["syllables"] == 3
    mixed = next(s for s in report["songs"] if s["idx"].endswith("sakura"))
    assert mixed["scat_phrases"] == 1 and mixed["lyric_fraction"] == 0.625
    assert [p["kind"] for p in report["problems"]] == ["missing_file", "scat_only"]


def test_download_uses_token_patterns_and_resumes_into_the_same_folder(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # belt and braces: nothing here may touch the network
    calls = []

    def fake_snapshot_download(**kwargs):
        calls.append(kwargs)
        make_layout(Path(kwargs["local_dir"]))  # what the Hub would leave there
        return kwargs["local_dir"]

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    root, out = tmp_path / "dl", tmp_path / "ja.jsonl"
    argv = [str(root), "--out", str(out), "--download", "--hf-token", "hf_test", "--subsets", "jazz"]
    assert _script().main(argv) == 0
    assert _script().main(argv) == 0  # a second run resumes into the same folder
    assert len(calls) == 2 and calls[0] == calls[1]
    kw = calls[0]
    assert kw["repo_id"] == REPO_ID and kw["repo_type"] == "dataset" and kw["token"] == "hf_test"
    assert kw["local_dir"] == str(root)
    assert "*jazz/*lead_vocal.wav" in kw["allow_patterns"] and "*jazz/*_SVS.musicxml" in kw["allow_patterns"]
    assert not any(p.endswith("mixture.wav") for p in kw["allow_patterns"])
    assert len(read_manifest(out)[0]) == 2
    assert allow_patterns("mixture", "default")[:2] == ["*mixture.wav", "*.musicxml"]


def test_gated_download_error_says_what_to_do(tmp_path):
    class GatedRepoError(Exception):
        pass

    def refuse(**kwargs):
        raise GatedRepoError("403 Client Error: access to this dataset is restricted")

    with pytest.raises(DownloadError, match="accept its terms"):
        download_jacappella(tmp_path, token=None, downloader=refuse)
    assert _script().main([str(tmp_path / "missing"), "--out", str(tmp_path / "x.jsonl")]) == 1
