"""ASR lyrics: Whisper timestamp tokens -> timed sections; a tiny random Whisper runs end to end (no download)."""

from __future__ import annotations

import numpy as np
import soundfile as sf
import torch

from songbloom.data.asr import WhisperTranscriber, convert_asr, whisper_segments
from songbloom.data.manifest import read_manifest

TS = 70  # first timestamp token of the tiny vocabulary


def test_timestamp_tokens_split_segments():
    words = {10: "AA1", 11: "B", 12: "K"}
    decode = lambda ids: " ".join(words[i] for i in ids)  # noqa: E731
    ids = [1, TS + 0, 10, 11, TS + 50, TS + 100, 12, 5, TS + 150, 2]
    assert whisper_segments(ids, TS, decode, offset=30.0, text_range=(10, TS)) == [
        (30.0, 31.0, "AA1 B"),
        (32.0, 33.0, "K"),
    ]


def test_convert_with_a_stand_in_transcriber(tmp_path):
    sr = 48000
    for name in ("a", "b"):
        sf.write(
            tmp_path / f"{name}.wav", (0.1 * np.random.default_rng(0).standard_normal(sr * 12)).astype(np.float32), sr
        )

    def transcribe(wav):
        return [(1.0, 3.0, "AA1 B"), (3.2, 5.0, "K AH0")] if len(wav) else []

    manifest, problems = convert_asr(tmp_path, tmp_path / "m.jsonl", transcribe, language="en")
    records, bad = read_manifest(manifest)
    assert not problems and not bad and len(records) == 2
    assert [(s.tag, s.start, s.end) for s in records[0].sections] == [
        ("intro", 0.0, 1.0),
        ("verse", 1.0, 5.0),
        ("outro", 5.0, 12.0),
    ]
    assert records[0].sections[1].text == "AA1 B . K AH0 ." and records[0].extra["lyrics_source"] == "asr"


def test_tiny_random_whisper_runs_and_every_file_is_accounted_for(tmp_path):
    from transformers import GenerationConfig, WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    cfg = WhisperConfig(
        vocab_size=120,
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        num_mel_bins=80,
        max_target_positions=64,
        decoder_start_token_id=1,
        pad_token_id=0,
        eos_token_id=2,
        bos_token_id=1,
    )
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(cfg)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        no_timestamps_token_id=TS - 1,
        max_initial_timestamp_index=50,
        is_multilingual=False,
    )
    transcriber = WhisperTranscriber(
        model,
        WhisperFeatureExtractor(feature_size=80),
        decode=lambda ids: " ".join("AA1" for _ in ids),
        text_range=(3, TS - 1),
        max_new_tokens=16,
    )
    sr = 48000
    for name in ("x", "y"):
        sf.write(
            tmp_path / f"{name}.wav", (0.1 * np.random.default_rng(1).standard_normal(sr * 2)).astype(np.float32), sr
        )
    segs = transcriber(np.zeros(16000 * 2, np.float32))
    assert all(0.0 <= s < e and isinstance(t, str) for s, e, t in segs)
    manifest, problems = convert_asr(tmp_path, tmp_path / "m.jsonl", transcriber)
    records, _ = read_manifest(manifest)
    assert len(records) + len(problems) == 2  # transcribed, or reported: never silently lost
    assert all(p.kind == "no_lyrics" for p in problems)
