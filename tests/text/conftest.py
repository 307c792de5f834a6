"""Shared, slow-to-build text fixtures (jieba, g2p_en and pyopenjtalk load once per test session)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def vocab():
    from songbloom.text.vocab import Vocabulary

    return Vocabulary.default()


@pytest.fixture(scope="session")
def g2p(vocab):
    from songbloom.text.g2p import LyricG2P

    return LyricG2P(vocab)


@pytest.fixture(scope="session")
def g2p_ja_plain(g2p, vocab):
    """Latin words inside Japanese read by pyopenjtalk (as the fixture's plain-pyopenjtalk field does)."""
    from songbloom.text.g2p import LyricG2P

    other = LyricG2P(vocab, japanese_latin="pyopenjtalk")
    other._zh, other._en, other._ja = g2p.chinese, g2p.english, g2p.japanese  # share loaded back ends
    return other


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="session")
def zh_en_records(shared_dir: Path) -> list[dict]:
    return _read_jsonl(shared_dir / "fixtures" / "g2p" / "zh_en.jsonl")


@pytest.fixture(scope="session")
def ja_records(shared_dir: Path) -> list[dict]:
    return _read_jsonl(shared_dir / "fixtures" / "g2p" / "ja.jsonl")
