"""infer.py lyrics (issue 18): unreadable text counts as dropped under --lyrics-policy, and the language of each
item comes from its JSONL line > --language > the checkpoint's training language > detection (logged)."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
import soundfile as sf

from tests.cli.test_infer import _run, release_dir  # noqa: F401  (the tiny release-layout model fixture)

KANJI = "[verse] 東京 大好 ."  # kanji only: Mandarin unless told it is Japanese


def _main(args):
    try:
        return _run(args)
    except SystemExit as e:  # an unknown flag is an assertion failure below, not an error
        return f"exit {e.code}"


def test_unreadable_text_is_dropped_with_the_text_shown():
    from songbloom.cli.infer import encode_lyrics
    from songbloom.text import Vocabulary, load_vocab_list

    vocab = Vocabulary(load_vocab_list())
    ids, notes = encode_lyrics("[verse] hello 안녕하세요 world 😀 .", vocab, 600)
    assert any("안녕하세요" in n and "😀" in n for n in notes), notes  # default policy warn: generated, warned
    with pytest.raises(ValueError, match="안녕하세요"):
        encode_lyrics("[verse] hello 안녕하세요 world 😀 .", vocab, 600, strict=True)  # --strict-lyrics = error


def _jobs(tmp_path, lines):
    wav = tmp_path / "p.wav"
    sf.write(wav, (0.1 * np.sin(np.linspace(0, 2000, 48000 * 2))).astype(np.float32), 48000)
    jsonl = tmp_path / "jobs.jsonl"
    jsonl.write_text("\n".join(json.dumps({**x, "prompt_wav": str(wav)}) for x in lines) + "\n", encoding="utf-8")
    return jsonl


def _read_as(caplog):
    return [r.getMessage().split("lyrics read as ", 1)[1] for r in caplog.records if "lyrics read as" in r.getMessage()]


def test_lyrics_policy_on_the_command_line(release_dir, tmp_path, caplog):  # noqa: F811
    jsonl = _jobs(tmp_path, [{"idx": "k", "lyrics": "[verse] hello 안녕하세요 world 😀 ."}])
    base = ["--input-jsonl", str(jsonl), "--ckpt-path", str(release_dir), "--n-samples", "1", "--seed", "0"]
    with caplog.at_level(logging.WARNING):
        assert _main([*base, "--output-dir", str(tmp_path / "warn")]) == 0  # default: warn
    assert any("안녕하세요" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert _main([*base, "--output-dir", str(tmp_path / "err"), "--lyrics-policy", "error"]) == 1
    assert not (tmp_path / "err" / "k_s0.flac").exists()
    assert _main([*base, "--output-dir", str(tmp_path / "strict"), "--strict-lyrics"]) == 1


def test_language_precedence_per_item(release_dir, tmp_path, caplog):  # noqa: F811
    jsonl = _jobs(tmp_path, [{"idx": "a", "lyrics": KANJI, "language": "ja"}, {"idx": "b", "lyrics": KANJI}])
    base = ["--input-jsonl", str(jsonl), "--n-samples", "1", "--seed", "0", "--log-level", "INFO"]

    def read_as(ckpt, *extra):
        caplog.clear()
        with caplog.at_level(logging.INFO):
            rc = _main([*base, "--ckpt-path", str(ckpt), "--output-dir", str(tmp_path / "o"), *extra])
        assert rc == 0, rc
        return _read_as(caplog)

    # JSONL language > --language
    assert read_as(release_dir, "--language", "zh") == ["ja (the JSONL line's language)", "zh (--language)"]
    # nothing given: detection (kanji only -> zh)
    assert read_as(release_dir) == ["ja (the JSONL line's language)", "zh (detected from the lyrics)"]
    # an export that records its training language: used when neither the line nor --language says
    trained = tmp_path / "trained_ja"
    shutil.copytree(release_dir, trained)
    (trained / "tiny_song.export.json").write_text(json.dumps({"training_language": "ja"}), encoding="utf-8")
    assert read_as(trained) == ["ja (the JSONL line's language)", "ja (the checkpoint's training language)"]
    assert read_as(trained, "--language", "zh")[1] == "zh (--language)"
