"""Small datasets: the validation split when --val-fraction is not given, and where the style prompts came from."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from songbloom.data.preprocess import PreprocessConfig, run_preprocess
from songbloom.data.synthetic import make_synthetic_dataset
from tests.data.standins import toy_encoders

SEGMENT_S = 6.0


def _preprocess(tmp_path: Path, num_songs: int, **cfg):
    manifest = make_synthetic_dataset(tmp_path / "songs", num_songs=num_songs, min_seconds=9.0, max_seconds=14.0)
    out = tmp_path / "shards"
    report = run_preprocess([manifest], PreprocessConfig(out_dir=str(out), segment_seconds=SEGMENT_S, **cfg),
                            toy_encoders())
    index = json.loads((out / "index.json").read_text())
    return report, index


def _songs(index: dict, split: str) -> int:
    return index["splits"].get(split, {}).get("num_songs", 0)


def test_three_songs_hold_out_one_by_default(tmp_path):
    report, index = _preprocess(tmp_path, 3)
    assert _songs(index, "val") == 1 and _songs(index, "train") == 2, index["splits"]
    assert "1 of 3 songs held out" in report.to_json().get("validation", "")


def test_two_songs_hold_out_none_with_a_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="songbloom.data"):
        report, index = _preprocess(tmp_path, 2)
    assert _songs(index, "val") == 0 and _songs(index, "train") == 2
    assert "no validation song" in caplog.text, caplog.text
    assert "--val-fraction 0" in report.to_json().get("validation", "")


def test_val_fraction_zero_disables_validation_without_a_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="songbloom.data"):
        _, index = _preprocess(tmp_path, 4, val_fraction=0.0)
    assert _songs(index, "val") == 0 and "no validation song" not in caplog.text


def test_prompt_sources_are_counted_and_own_target_prompts_warned(tmp_path, caplog):
    """9-14 s songs in 6 s segments: no 10 s clip fits outside a segment, so every prompt overlaps its target."""
    with caplog.at_level(logging.WARNING, logger="songbloom.data"):
        report, index = _preprocess(tmp_path, 3)
    summary = report.to_json()
    assert summary.get("prompt_sources") == {"inside_fallback": report.written}, summary
    assert index.get("prompt_sources") == {"inside_fallback": report.written}
    assert "inside their own target" in caplog.text


@pytest.mark.parametrize(("argv", "want"), [([], None), (["--val-fraction", "0"], 0.0)])
def test_cli_leaves_the_split_to_the_song_count(argv, want):
    from songbloom.cli.preprocess import build_parser

    assert build_parser().parse_args(["m.jsonl", "--out", "x", *argv]).val_fraction == want
