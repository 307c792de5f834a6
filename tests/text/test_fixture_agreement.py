"""Agreement with the official front end (zh/en) and plain pyopenjtalk (ja) on the shared G2P fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from songbloom.text.ja import map_phonemes

KNOWN_DIFFERENCES = Path(__file__).with_name("data") / "known_differences.yaml"
BENCHMARK_KEY = "g2p_lines:"  # entries for benchmarks/data/g2p_lines.txt (checked by benchmarks/g2p_agreement.py)
PUNCT_TOKENS = {",", ".", "!", "?", "…", "-", ""}


@pytest.fixture(scope="module")
def zh_en_results(g2p, vocab, zh_en_records):
    out = {}
    for rec in zh_en_records:
        ours = [t for t in g2p(rec["text"]).split(" ") if t in vocab]
        out[rec["id"]] = (ours, rec["in_vocab_tokens"])
    return out


def test_zh_en_agreement_rate(zh_en_results):
    agree = sum(ours == ref for ours, ref in zh_en_results.values())
    rate = agree / len(zh_en_results)
    assert rate >= 0.95, f"zh/en agreement {agree}/{len(zh_en_results)} = {rate:.1%} < 95%"


def test_zh_en_differences_are_all_documented(zh_en_results):
    entries = yaml.safe_load(KNOWN_DIFFERENCES.read_text(encoding="utf-8")) or {}
    known = {k: v for k, v in entries.items() if not k.startswith(BENCHMARK_KEY)}
    differing = {rid for rid, (ours, ref) in zh_en_results.items() if ours != ref}
    undocumented = differing - set(known)
    stale = set(known) - differing
    assert not undocumented, f"undocumented differences from the official tokens: {sorted(undocumented)}"
    assert not stale, f"{KNOWN_DIFFERENCES.name} lists records that now agree (remove them): {sorted(stale)}"
    for rid, entry in entries.items():
        assert entry["kind"] in {"gap", "fix"} and entry["reason"].strip(), rid


def test_zh_en_output_is_in_vocabulary_except_empty_items(g2p, vocab, zh_en_records):
    for rec in zh_en_records:
        out = g2p(rec["text"]).split(" ")
        assert all(t in vocab for t in out), (rec["id"], [t for t in out if t not in vocab])


def _ja_tokens(front_end, rec) -> list[str]:
    language = "ja"  # the fixture's `lang` says these are Japanese: the per-item override a manifest would give
    out = front_end(rec["text"], language=language).split(" ")
    return out


def test_japanese_lines_match_pyopenjtalk_after_mapping(g2p, g2p_ja_plain, vocab, ja_records):
    mismatches = []
    for rec in ja_records:
        # Latin words: plain pyopenjtalk spells them in Japanese; our default reads them as English.
        front_end = g2p if rec["lang"] == "ja" else g2p_ja_plain
        out = _ja_tokens(front_end, rec)
        assert all(t in vocab for t in out), (rec["id"], [t for t in out if t not in vocab])
        phones = [t for t in out if t not in front_end.tags and t not in PUNCT_TOKENS]
        if phones != map_phonemes(rec["pyopenjtalk"]["tokens"]):
            mismatches.append(rec["id"])
    assert not mismatches, f"Japanese records not equal to mapped pyopenjtalk phonemes: {mismatches}"


def test_japanese_with_english_words_keeps_japanese_parts(g2p, ja_records):
    rec = next(r for r in ja_records if r["id"] == "ja_030")  # 君はmy sunshine
    out = g2p(rec["text"], language="ja").split(" ")
    assert out[:6] == ["k", "i", "m", "i", "w", "a"]
    assert "AY1" in out and "SH" in out  # English words read as English, not spelled letter by letter


def test_kanji_only_words_in_japanese_song_are_japanese(g2p):
    song = "[verse] 東京 の 夜. 桜 , [chorus] 世界"
    out = g2p(song).split(" ")  # detected as Japanese from the kana in the song
    assert out[:7] == ["[verse]", "t", "o", "o", "ky", "o", "o"]
    assert "s a k u r a" in " ".join(out) and "s e k a i" in " ".join(out)
    assert not any(t[-1:].isdigit() for t in out)  # no Mandarin toned finals


def test_language_override(g2p):
    assert g2p("世界", language="ja") == "s e k a i"
    assert g2p("世界") == "sh ir4 j ie4"  # no kana anywhere: Mandarin, as the release reads it
    with pytest.raises(ValueError, match="unknown language"):
        g2p("世界", language="fr")


def test_benchmark_entries_name_existing_lines():
    """g2p_lines:<n> entries (kept honest by benchmarks/g2p_agreement.py) point at a real benchmark line."""
    entries = yaml.safe_load(KNOWN_DIFFERENCES.read_text(encoding="utf-8")) or {}
    lines_file = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "g2p_lines.txt"
    rows = lines_file.read_text(encoding="utf-8").splitlines()
    for key in (k for k in entries if k.startswith(BENCHMARK_KEY)):
        number = int(key[len(BENCHMARK_KEY):])
        assert 1 <= number <= len(rows) and rows[number - 1].strip() and not rows[number - 1].startswith("#"), key
