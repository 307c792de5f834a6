"""Lyrics that follow the audio: tag expansion by duration, cropping, and release-format validation."""

from __future__ import annotations

import json

import pytest

from songbloom.data.lyrics import (
    TokenSection,
    check_release_lyrics,
    crop_sections,
    sections_to_lyrics,
    window_lyric_ids,
)
from songbloom.data.manifest import Section
from songbloom.text.vocab import Vocabulary

SECTIONS = [
    Section("intro", 0.0, 10.0),
    Section("verse", 10.0, 30.0, "AA1 B . K AH0"),
    Section("inst", 30.0, 40.0),
    Section("chorus", 40.0, 60.0, "L AH1 . L AH1"),
    Section("outro", 60.0, 70.0),
]


def test_non_vocal_tags_follow_seconds_per_tag():
    at_1s = sections_to_lyrics(SECTIONS, 1.0)
    at_5s = sections_to_lyrics(SECTIONS, 5.0)
    assert at_1s.split(" , ")[0] == " ".join(["[intro]"] * 10)
    assert at_5s.split(" , ")[0] == "[intro] [intro]"
    assert at_5s.split(" , ")[1] == "[verse] AA1 B . K AH0"
    assert at_1s.count("[inst]") == 10 and at_5s.count("[inst]") == 2


def test_crop_keeps_vocal_sections_by_midpoint_and_clips_the_rest():
    # window 25..45 s: verse midpoint 20 and chorus midpoint 50 outside (dropped), inst clipped to 10 s
    assert [(s.tag, s.start, s.end) for s in crop_sections(SECTIONS, 25.0, 45.0)] == [("inst", 5.0, 15.0)]
    # window 15..55 s: both midpoints inside -> both kept
    kept = crop_sections(SECTIONS, 15.0, 55.0)
    assert [s.tag for s in kept] == ["verse", "inst", "chorus"]
    assert sections_to_lyrics(kept, 5.0) == "[verse] AA1 B . K AH0 , [inst] [inst] , [chorus] L AH1 . L AH1"


def test_token_windows_match_string_windows():
    vocab = Vocabulary.default()
    tok = [
        TokenSection(
            s.tag, s.start, s.end, tuple(vocab.tokenize(f"[{s.tag}] {s.text}" if s.vocal else f"[{s.tag}]").ids)
        )
        for s in SECTIONS
    ]
    sep = [vocab.index[","]]
    for lo, hi in [(0.0, 70.0), (15.0, 55.0), (25.0, 45.0), (3.3, 12.1)]:
        expect = vocab.tokenize(sections_to_lyrics(crop_sections(SECTIONS, lo, hi), 1.0)).ids
        assert window_lyric_ids(tok, lo, hi, 1.0, sep) == expect
    restored = [TokenSection.from_json(json.loads(json.dumps(t.to_json()))) for t in tok]
    assert restored == tok


def test_release_examples_are_valid(shared_dir):
    for name in ("test.jsonl", "test_240s.jsonl"):
        for line in (shared_dir / "reference" / "upstream_example" / name).read_text().splitlines():
            if line.strip():
                assert check_release_lyrics(json.loads(line)["lyrics"]) is None


@pytest.mark.parametrize(
    ("text", "instrumental", "needle"),
    [
        ("", False, "empty"),
        ("   ", False, "empty"),
        ("just words", False, "no structure tag"),
        ("[verse] a . , [hook] b", False, "unknown structure tags"),
        ("[verse] , [chorus] b", False, "no text"),
        ("[intro] hello , [verse] b", False, "carries text"),
        ("[intro] [intro] , [outro]", False, "not marked instrumental"),
    ],
)
def test_invalid_lyrics_are_explained(text, instrumental, needle):
    assert needle in check_release_lyrics(text, instrumental)


def test_instrumental_may_be_empty():
    assert check_release_lyrics("", instrumental=True) is None
    assert check_release_lyrics("[intro] [inst] , [outro]", instrumental=True) is None
