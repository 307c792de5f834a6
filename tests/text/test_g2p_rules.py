"""Per-language G2P rules, the tokenizer policy and the CLI."""

from __future__ import annotations

import json
import logging

import pytest

from songbloom.text.g2p import detect_language, split_by_script
from songbloom.text.tokenizer import LyricTokenError, LyricTokenizer
from songbloom.text.zh import syllable_to_symbols


# ----- Chinese ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("一天", "y i4 t ian1"),  # 一 before a non-4th tone -> yi4
        ("一个", "y i2 g e5"),  # 一 before 4th tone -> yi2; 个 as a measure word is neutral
        ("第一", "d i4 y i1"),  # ordinal keeps yi1
        ("看一看", "k an4 y i5 k an4"),
        ("不怕", "b u2 p a4"),  # 不 before 4th tone
        ("你好", "n i2 h ao3"),  # third-tone sandhi
        ("月儿", "y ve4 EE er2"),  # erhua not merged
        ("长大", "zh ang3 d a4"),
        ("阿姨", "AA a1 y i2"),  # zero initials
        ("鱼", "y v2"),
        ("知道", "zh ir1 d ao4"),
        ("字", "z i04"),
    ],
)
def test_chinese_rules(g2p, text, expected):
    assert g2p(text) == expected


def test_syllable_split_table():
    assert syllable_to_symbols("", "ian1") == ("y", "En1")
    assert syllable_to_symbols("", "ie3") == ("y", "E3")
    assert syllable_to_symbols("", "uei4") == ("w", "ei4")
    assert syllable_to_symbols("g", "uei4") == ("g", "ui4")
    assert syllable_to_symbols("j", "van2") == ("j", "van2")
    assert syllable_to_symbols("sh", "i4") == ("sh", "ir4")
    assert syllable_to_symbols("", "m2") is None


def test_traditional_and_numbers_in_chinese(g2p):
    assert g2p("還會") == g2p("还会")
    assert g2p("3年") == "TH R IY1 n ian2"  # numbers are read in English, as the release does


# ----- English ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I", "I"),  # pass-through: already a vocabulary symbol
        ("A", "EY1"),
        ("hello, world!", "HH AH0 L OW1 , W ER1 L D !"),
        ("Jack's", "JH AE1 K S"),
        ("James's", "JH EY1 M Z IH0 Z"),
        ("TV", "T IY1 V IY1"),
        ("AI", "EY1 AY1"),  # removed abbreviation -> spelled
        ("twenty-one", "T W EH1 N T IY0 - W AH1 N"),
        ("17", "S EH1 V AH0 N T IY1 N"),
        ("hello  world ", "HH AH0 L OW1  W ER1 L D "),  # empty items survive (id 0 later)
        ("[Verse]", "V ER1 S"),  # unknown tag spelled as an English word
        ("[verse]", "[verse]"),
    ],
)
def test_english_rules(g2p, text, expected):
    assert g2p(text) == expected


def test_english_unknown_word_uses_model(g2p):
    out = g2p("glimmerbloomz").split(" ")
    assert out and all(t in g2p.symbols for t in out)


# ----- mixed -------------------------------------------------------------------------------------------
def test_split_by_script():
    assert split_by_script("今天是Friday.") == [("今天是", "zh"), ("Friday", "en"), (".", "sp")]
    assert split_by_script("你好，世界") == [("你好", "zh"), (",", "sp"), ("世界", "zh")]


def test_mixed_line(g2p):
    assert g2p("我爱你baby") == "w o3 AA ai4 n i3 B EY1 B IY0"


def test_detect_language():
    assert detect_language("桜の花が咲いている") == "ja"
    assert detect_language("我爱你") == "zh"
    assert detect_language("hello") == "en"


# ----- tokenizer policy -------------------------------------------------------------------------------
def test_tokenizer_policies(vocab, g2p, caplog):
    tok = LyricTokenizer(vocab, max_len=4, policy="error", g2p=g2p)
    with pytest.raises(LyricTokenError, match="exceed max_len=4") as info:
        tok.encode("[verse] hello world", where="song.jsonl:3")
    assert "song.jsonl:3" in str(info.value)
    enc = info.value.encoding
    assert enc.truncated and enc.num_tokens_before_truncation == 9 and len(enc.ids) == 4

    with pytest.raises(LyricTokenError, match="not in the vocabulary"):
        tok.encode_processed("[verse] HH zz")
    with caplog.at_level(logging.WARNING):
        enc = LyricTokenizer(vocab, policy="warn").encode_processed("[verse] HH zz")
    assert enc.dropped == ["zz"] and enc.tokens == ["[verse]", "HH"] and "zz" in caplog.text
    enc = LyricTokenizer(vocab, policy="drop").encode_processed("[verse] HH  zz")
    assert enc.ids == [1, vocab.index["HH"], 0] and not enc.truncated
    with pytest.raises(ValueError, match="policy"):
        LyricTokenizer(vocab, policy="ignore")


def test_tokenizer_from_config(vocab):
    from songbloom.config import SongBloomConfig

    cfg = SongBloomConfig.from_name("tiny")
    tok = LyricTokenizer.from_config(cfg)
    assert tok.max_len == cfg.model.lyric_max_len and tok.vocab.items == tuple(cfg.model.lyric_vocab)


def test_tokenizer_matches_vocab_tokenize(vocab):
    processed = "[verse] HH AH0 L OW1  , zz ."
    enc = LyricTokenizer(vocab, policy="drop").encode_processed(processed)
    assert enc.ids == vocab.tokenize(processed).ids
    assert enc.dropped == vocab.tokenize(processed).dropped


# ----- CLI ---------------------------------------------------------------------------------------------
def test_cli_json(tmp_path, capsys, monkeypatch, g2p):
    import songbloom.text.cli as cli

    monkeypatch.setattr(cli, "LyricG2P", lambda japanese_latin="english": g2p)
    path = tmp_path / "lyrics.txt"
    path.write_text("[verse] hello\n\n桜の花\n", encoding="utf-8")
    assert cli.main([str(path), "--json", "--max-len", "3"]) == 1  # line 1 is truncated
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["line"] for r in rows] == [1, 3]
    assert rows[0]["tokens"] == ["[verse]", "HH", "AH0"] and rows[0]["truncated"] is True
    assert rows[0]["dropped"] == []
    assert rows[1]["tokens"] == ["s", "a", "k"]
    assert cli.main([str(path), "--language", "ja"]) == 0
    text = capsys.readouterr().out
    assert "phonemes (5): [verse] HH AH0 L OW1" in text and "s a k u r a n o h a n a" in text
