"""Lyric format: parsing, normalisation, validation messages, timestamps and cropping."""

from __future__ import annotations

import pytest

from songbloom.text.lyrics import (
    Lyric,
    LyricFormatError,
    canonical_tag,
    normalize_lyrics,
    parse_lyrics,
    validate_lyrics,
)

# (bad lyric, problem kind, a piece of text the message must quote or mention)
BAD_LYRICS = [
    ("", "empty", "empty"),
    ("[drop] hello", "unknown_tag", "[drop]"),
    ("[verse] , [chorus] hi", "vocal_without_text", "[verse]"),
    ("[intro] hello , [verse] x", "text_in_non_vocal", "hello"),
    ("[intro] [intro] , [inst]", "no_vocal_section", "no vocal section"),
    ("hello [verse] x", "text_before_tag", "hello"),
    (", [verse] x", "misplaced_separator", "before any section"),
    ("[verse] x , , [chorus] y", "misplaced_separator", "in a row"),
    ("[verse] x , y", "misplaced_separator", ", y"),
    ("[verse] x ,", "misplaced_separator", "ends with"),
    ("[verse x", "unbalanced_bracket", "[verse"),
    ("[00:10.00][verse]\n[00:11.00]a\n[00:05.00][chorus]\n[00:06.00]b", "bad_times", "backwards"),
]


@pytest.mark.parametrize(("text", "kind", "quoted"), BAD_LYRICS)
def test_bad_lyrics_name_the_problem(text, kind, quoted):
    problems = validate_lyrics(text)
    matching = [p for p in problems if p.kind == kind]
    assert matching, f"{text!r}: expected a {kind} problem, got {[str(p) for p in problems]}"
    assert any(quoted in str(p) for p in matching), [str(p) for p in matching]
    with pytest.raises(LyricFormatError, match=kind):
        parse_lyrics(text)


def test_error_lists_every_problem_at_once():
    with pytest.raises(LyricFormatError) as info:
        parse_lyrics("[drop] x , [verse] , [intro] la")
    kinds = {p.kind for p in info.value.problems}
    assert {"unknown_tag", "vocal_without_text", "text_in_non_vocal"} <= kinds


def test_good_canonical_lyric_round_trips():
    text = "[intro] [intro] , [verse] a b. c d , [chorus] e , [inst] [inst] [inst] , [outro]"
    assert validate_lyrics(text) == []
    assert normalize_lyrics(text) == text


def test_user_input_is_normalised():
    text = "[Intro]\n\n[Verse 1]\n你好，世界！\n“Hello” there…\n\n[CHORUS]\nla la la\n[Solo]\n[outro]"
    assert normalize_lyrics(text) == "[intro] , [verse] 你好. 世界. Hello there , [chorus] la la la , [inst] , [outro]"


def test_tag_aliases():
    assert canonical_tag("[Verse 2]") == "verse"
    assert canonical_tag("[START]") == "intro"
    assert canonical_tag("[break]") == "inst"
    assert canonical_tag("[drop]") is None


LRC = """[ti:Song]
[length: 00:45.00]
[00:00.00][intro]
[00:08.00][verse]
[00:08.50]line one
[00:12.00]line two
[00:20.00][inst]
[00:30.00][chorus]
[00:30.50]chorus one
[00:35.00]chorus two
"""


def test_lrc_keeps_section_times():
    lyric = parse_lyrics(LRC)
    got = [(s.tag, s.start, s.end) for s in lyric.sections]
    assert got == [("intro", 0.0, 8.0), ("verse", 8.0, 20.0), ("inst", 20.0, 30.0), ("chorus", 30.0, 45.0)]
    assert [s.start for s in lyric.sections[1].sentences] == [8.5, 12.0]
    # non-vocal tags come from durations: 1 s per tag (150 s models) or 5 s per tag (240 s model)
    assert lyric.render(1.0).startswith("[intro] " * 7 + "[intro] , [verse] line one. line two , " + "[inst] " * 9)
    assert lyric.render(5.0) == (
        "[intro] [intro] , [verse] line one. line two , [inst] [inst] , [chorus] chorus one. chorus two"
    )


def test_crop_to_window():
    """The window rule of preprocessing and training: a line (timestamp to the next one, or to the section's end)
    belongs to the window holding its midpoint; chorus one (30.5-35 s) is mostly after 31 s, line one (8.5-12 s)
    mostly after 10 s."""
    lyric = parse_lyrics(LRC)
    cropped = lyric.crop(5.0, 31.0)
    assert cropped.render(1.0) == "[intro] [intro] [intro] , [verse] line one. line two , " + " ".join(["[inst]"] * 10)
    assert lyric.crop(10.0, 36.0).render(5.0) == "[verse] line one. line two , [inst] [inst] , [chorus] chorus one"
    with pytest.raises(ValueError, match="empty crop window"):
        lyric.crop(3.0, 3.0)
    with pytest.raises(ValueError, match="no timestamps"):
        parse_lyrics("[verse] a").crop(0, 1)


def test_sections_from_manifest():
    lyric = Lyric.from_sections(
        [
            {"tag": "intro", "start": 0.0, "end": 10.0},
            {"tag": "Verse", "text": "one. two", "start": 10.0, "end": 20.0},
        ]
    )
    assert lyric.render(5.0) == "[intro] [intro] , [verse] one. two"
    assert lyric.crop(8.0, 30.0).render(1.0) == "[intro] [intro] , [verse] one. two"
    with pytest.raises(LyricFormatError, match="vocal_without_text"):
        Lyric.from_sections([{"tag": "chorus", "text": ""}])


def test_crop_follows_the_window_rule_of_preprocessing_and_training():
    """``Lyric.crop`` and ``songbloom.data.lyrics.crop_sections`` (segments, training crops) take the same lines
    from an LRC song with a line every 3 s, for windows that cut lines anywhere; consecutive windows share none and
    lose none."""
    from songbloom.data.convert import lrc_to_sections
    from songbloom.data.lyrics import crop_sections

    entries = [(3.0 * i + 1.0, f"line{i}") for i in range(20)]  # 1 s, 4 s, ..., 58 s
    duration = 62.0
    lrc = "[length: 01:02.00]\n[00:00.00][verse]\n" + "\n".join(f"[00:{t:05.2f}]{text}" for t, text in entries)
    lyric = parse_lyrics(lrc)
    sections = lrc_to_sections(entries, duration)
    for width in (7.3, 10.0, 13.7):
        starts = [k * width for k in range(int(duration // width) + 1)]
        taken: list[str] = []
        for w0 in starts:
            ours = [s.text for sec in lyric.crop(w0, w0 + width).sections if sec.vocal for s in sec.sentences]
            data = [ln.text for sec in crop_sections(sections, w0, w0 + width) for ln in sec.lines]
            assert ours == data, (width, w0, ours, data)
            taken += ours
        assert taken == [text for _, text in entries], width
