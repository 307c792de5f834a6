"""Converters: LRC folders, tiny jaCappella and Kiritan layouts -> manifests -> shards -> batches."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf

from songbloom.data.convert import convert_folder, convert_jacappella, convert_kiritan, lrc_to_sections, parse_lrc
from songbloom.data.datamodule import SongBloomDataModule
from songbloom.data.encoders import Encoders, ProcessedLyrics
from songbloom.data.lyrics import check_release_lyrics
from songbloom.data.manifest import read_manifest
from songbloom.data.preprocess import PreprocessConfig, run_preprocess
from songbloom.inference.jobs import read_jsonl
from songbloom.sketch.recovery.heldout import read_heldout
from songbloom.text.vocab import Vocabulary
from tests.data.standins import ToySketch, ToyVAE, toy_encoders

SCORE = """<?xml version="1.0" encoding="UTF-8"?>
<score-partwise><part id="P1"><measure number="1">
<note><pitch><step>C</step><octave>4</octave></pitch><duration>1</duration><lyric><text>か</text></lyric></note>
<note><pitch><step>D</step><octave>4</octave></pitch><duration>1</duration><lyric><text>え</text></lyric></note>
<note><rest/><duration>1</duration></note>
<note><pitch><step>E</step><octave>4</octave></pitch><duration>1</duration><lyric><text>る</text></lyric></note>
<note><pitch><step>E</step><octave>4</octave></pitch><duration>1</duration></note>
</measure></part></score-partwise>"""


class KanaStandIn:
    """Maps every kana to the phoneme 'a' (stands in for the Japanese G2P of the text front end)."""

    fingerprint = "kana-standin"

    def __init__(self):
        self.vocabulary = Vocabulary.default()

    def process(self, text: str, language: str | None = None) -> ProcessedLyrics:
        items = []
        for word in text.replace(".", " . ").split():
            items += [word] if word.startswith("[") or word == "." else ["a"] * len(word)
        processed = " ".join(items)
        return ProcessedLyrics(processed, self.vocabulary.tokenize(processed).ids)


def _wav(path, seconds, sr=48000, channels=1, seed=0):
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * (200 + 50 * seed) * t) + 0.02 * np.random.default_rng(seed).standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.stack([x] * channels, 1).astype(np.float32), sr)


def test_lrc_becomes_timed_sections():
    lrc = "[ti:song]\n[00:02.00]AA1 B\n[00:04.50]K AH0\n[00:06.00][chorus]\n[00:06.00]L AH1\n[00:20.00]M AH1\n"
    entries = parse_lrc(lrc)
    assert entries[0] == (2.0, "AA1 B") and len(entries) == 5
    secs = lrc_to_sections(entries, 30.0)
    # a line lasts until the next one (at most 10 s); a 4 s silence becomes [inst]
    assert [(s.tag, s.start, s.end) for s in secs] == [
        ("intro", 0.0, 2.0),
        ("verse", 2.0, 6.0),
        ("chorus", 6.0, 16.0),
        ("inst", 16.0, 20.0),
        ("chorus", 20.0, 30.0),
    ]
    assert secs[1].text == "AA1 B . K AH0 ." and secs[2].text == "L AH1 ."
    tail = lrc_to_sections(parse_lrc("[00:01.00]AA1\n[00:02.00]\n"), 10.0)
    assert [(s.tag, s.start, s.end) for s in tail] == [("intro", 0.0, 1.0), ("verse", 1.0, 2.0), ("outro", 2.0, 10.0)]


def test_folder_with_lrc_and_txt_to_batches(tmp_path):
    src = tmp_path / "songs"
    _wav(src / "a.wav", 8.0, channels=2)
    (src / "a.lrc").write_text("[00:01.00]AA1 B\n[00:03.00]K AH0\n[00:05.00]\n", encoding="utf-8")
    _wav(src / "sub" / "b.flac", 4.0, sr=44100, seed=1)
    (src / "sub" / "b.txt").write_text("L AH1\nM AH1\n", encoding="utf-8")
    _wav(src / "c.wav", 3.0, seed=2)  # no lyrics: reported
    manifest, problems = convert_folder(src, tmp_path / "m.jsonl", language="en", license="test")
    assert [p.kind for p in problems] == ["no_lyrics"] and problems[0].file.endswith("c.wav")
    records, bad = read_manifest(manifest)
    assert not bad and [r.idx for r in records] == ["a", "sub__b"]
    assert records[0].sections[0].tag == "intro" and records[1].lyrics == "[verse] L AH1. M AH1."

    out = tmp_path / "shards"
    report = run_preprocess(
        [manifest], PreprocessConfig(out_dir=str(out), lyrics_policy="drop"), toy_encoders(policy="drop")
    )
    assert report.written == 2 and not report.problems
    dm = SongBloomDataModule(
        shards_dir=str(out), batch_size=2, num_workers=0, max_frames=64, shuffle_buffer=1, batches_per_epoch=2
    )
    dm.setup("fit")
    for b in dm.train_dataloader():
        assert b["x_latent"].shape[:2] == (2, 8) and (b["x_len"] % 16 == 0).all()


def test_jacappella_and_kiritan_layouts_to_batches(tmp_path):
    ja = tmp_path / "jacappella"
    for i, subset in enumerate(["jazz", "punk"]):
        song = ja / subset / f"song{i}"
        _wav(song / "lead_vocal.wav", 4.0, seed=i)
        _wav(song / "mixture.wav", 4.0, seed=i)
        (song / f"song{i}_SVS.musicxml").write_text(SCORE, encoding="utf-8")
    _wav(ja / "jazz" / "noscore" / "lead_vocal.wav", 2.0)
    m1, p1 = convert_jacappella(ja, tmp_path / "ja.jsonl")
    assert [p.kind for p in p1] == ["missing_file"]
    recs, _ = read_manifest(m1)
    assert [r.lyrics for r in recs] == ["[verse] かえ. る."] * 2 and recs[0].language == "ja"

    ki = tmp_path / "kiritan"
    for name in ("01", "02"):
        _wav(ki / "wav" / f"{name}.wav", 3.0, sr=96000, seed=3)
        (ki / "musicxml").mkdir(parents=True, exist_ok=True)
        (ki / "musicxml" / f"{name}.xml").write_text(SCORE, encoding="utf-8")
    _wav(ki / "wav" / "03.wav", 3.0, sr=96000)
    m2, p2 = convert_kiritan(ki, tmp_path / "ki.jsonl")
    assert len(p2) == 1 and p2[0].file.endswith("03.wav")

    out = tmp_path / "shards"
    enc = Encoders(latent=ToyVAE(), lyrics=KanaStandIn(), sketch=ToySketch())
    report = run_preprocess([m1, m2], PreprocessConfig(out_dir=str(out)), enc)
    assert report.written == 4 and not report.problems
    dm = SongBloomDataModule(
        shards_dir=str(out), batch_size=4, num_workers=0, max_frames=64, shuffle_buffer=1, batches_per_epoch=1
    )
    dm.setup("fit")
    (b,) = list(dm.train_dataloader())
    assert b["x_latent"].shape[:2] == (4, 8) and all(len(ids) > 0 for ids in b["lyric_ids"])


def test_an_lrc_song_also_gets_its_whole_lyrics_for_readers_of_whole_songs(tmp_path):
    """recover --heldout and --requests read a song's lyrics as one string: an LRC line carries it beside its
    sections (non-vocal tags at 1 s each, as the 150 s models count them)."""
    src = tmp_path / "songs"
    _wav(src / "a.wav", 8.0)
    (src / "a.lrc").write_text("[00:01.00]夜空に光る星\n[00:03.00]shine on me\n[00:05.00]\n", encoding="utf-8")
    manifest, problems = convert_folder(src, tmp_path / "m.jsonl", language="ja")
    records, bad = read_manifest(manifest)
    assert not problems and not bad and [s.tag for s in records[0].sections] == ["intro", "verse", "outro"]
    lyrics = "[intro] , [verse] 夜空に光る星 . shine on me . , [outro] [outro] [outro]"
    assert records[0].lyrics == lyrics and check_release_lyrics(lyrics) is None
    items, held_problems = read_heldout(manifest)
    assert not held_problems and [(i.name, i.lyrics) for i in items] == [("a", lyrics)]
    # the tutorial's request line made from a manifest line (idx, lyrics, the song as its prompt)
    requests = tmp_path / "requests.jsonl"
    requests.write_text(json.dumps({"idx": "a", "lyrics": records[0].lyrics, "prompt_wav": records[0].audio_path},
                                   ensure_ascii=False) + "\n", encoding="utf-8")
    jobs, job_problems = read_jsonl(requests)
    assert not job_problems and jobs[0].lyrics == lyrics


def test_a_broken_audio_file_is_named_as_audio_not_as_lyrics(tmp_path):
    """A song whose audio cannot be read is skipped as unreadable audio (not as bad lyrics); the others land."""
    d = tmp_path / "corpus"
    d.mkdir()
    sf.write(d / "good.wav", np.zeros(48000 * 3, dtype=np.float32), 48000)
    (d / "good.lrc").write_text("[00:00.50]夜空に光る星 shine on me\n", encoding="utf-8")
    (d / "broken.wav").write_bytes(b"RIFF\x00\x00 not audio")
    (d / "broken.lrc").write_text("[00:01.00]壊れたファイル\n", encoding="utf-8")
    out, problems = convert_folder(d, tmp_path / "songs.jsonl", language="ja")
    assert [p.kind for p in problems] == ["unreadable_audio"]
    assert problems[0].file.endswith("broken.wav") and "convert it to WAV or FLAC" in problems[0].reason
    records, _ = read_manifest(out)
    assert [r.idx for r in records] == ["good"]
