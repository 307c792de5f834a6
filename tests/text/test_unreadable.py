"""``python -m songbloom.text``: text the front end cannot read is reported as dropped (issue 18), the detected
language is shown, and full-width Latin is read as words."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _records(tmp_path, capsys, lines, *args):
    """``python -m songbloom.text FILE --json`` as a user runs it: (exit code, one record per line)."""
    f = tmp_path / "lyrics.txt"
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "songbloom.text", str(f), "--json", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    return proc.returncode, [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]


def test_unreadable_scripts_and_emoji_are_dropped_with_the_text(tmp_path, capsys):
    lines = ["[verse] hello 안녕하세요 world", "[verse] love 😀 you", "[verse] hello world"]
    rc, recs = _records(tmp_path, capsys, lines)
    assert rc == 1  # a line lost text
    assert recs[0]["dropped"] == ["안녕하세요"] and recs[1]["dropped"] == ["😀"] and recs[2]["dropped"] == []
    assert [r.get("language") for r in recs] == ["en", "en", "en"]
    assert recs[0].get("language_source") == "detected"


def test_full_width_latin_is_read_as_a_word_and_language_given(tmp_path, capsys):
    rc, recs = _records(tmp_path, capsys, ["[verse] ＬＯＶＥ ＬＯＶＥ"], "--language", "en")
    ascii_rc, ascii_recs = _records(tmp_path, capsys, ["[verse] LOVE LOVE"], "--language", "en")
    assert recs[0]["tokens"] == ascii_recs[0]["tokens"] and recs[0]["dropped"] == []
    assert recs[0].get("language_source") == "given" and rc == ascii_rc == 0
