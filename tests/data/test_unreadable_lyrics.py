"""Preprocessing: lyrics with text the front end cannot read are not written silently (issue 18)."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf

from songbloom.data.encoders import Encoders, TextFrontendLyricsProcessor
from songbloom.data.preprocess import PreprocessConfig, run_preprocess
from tests.data.standins import ToySketch, ToyVAE

SR = 48000


def test_unreadable_scripts_and_emoji_skip_the_song_with_the_text_shown(tmp_path):
    x = (0.3 * np.sin(np.linspace(0, 3000, 3 * SR))).astype(np.float32)
    sf.write(tmp_path / "a.wav", np.stack([x, x], 1), SR)
    rows = [
        {"idx": "hangul", "audio_path": "a.wav", "lyrics": "[verse] hello 안녕하세요 world ."},
        {"idx": "emoji", "audio_path": "a.wav", "lyrics": "[verse] hello world 😀 ."},
        {"idx": "fine", "audio_path": "a.wav", "lyrics": "[verse] hello world ."},
    ]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", "utf-8")
    enc = Encoders(latent=ToyVAE(), lyrics=TextFrontendLyricsProcessor(policy="error"), sketch=ToySketch())
    report = run_preprocess([tmp_path / "m.jsonl"], PreprocessConfig(out_dir=str(tmp_path / "s")), enc)
    skipped = {p.idx: p for p in report.problems}
    assert report.written == 1 and sorted(skipped) == ["emoji", "hangul"]
    assert "안녕하세요" in skipped["hangul"].reason and "😀" in skipped["emoji"].reason
    assert {p.kind for p in skipped.values()} == {"oov_lyrics"}
