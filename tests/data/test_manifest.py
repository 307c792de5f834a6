"""Manifest reading: the fork's JSONL as is, our extended fields, and every bad line reported with its place."""

from __future__ import annotations

import json

from songbloom.data.manifest import read_manifest, write_manifest


def test_release_inference_jsonl_is_reported_as_lacking_audio(shared_dir, tmp_path):
    # The release example is an inference file (no target audio): each line is reported, none crashes.
    path = shared_dir / "reference" / "upstream_example" / "test.jsonl"
    records, problems = read_manifest(path)
    assert records == [] and problems and all(p.field == "audio_path" and p.idx for p in problems)
    # With a target audio added it is a valid training line, prompt resolved beside the manifest.
    rows = [dict(json.loads(line), audio_path="song.wav") for line in path.read_text().splitlines() if line.strip()]
    records, problems = read_manifest(write_manifest(rows, tmp_path / "train.jsonl"))
    assert problems == [] and [r.idx for r in records][:2] == ["test", "test2"]
    assert records[0].prompt_wav == str(tmp_path / "example" / "test.wav")


def test_fork_schema_and_extensions(tmp_path):
    rows = [
        {"idx": "a", "audio_path": "x/a.wav", "lyrics": "[verse] la .", "prompt_wav": "p.wav", "sketch_tokens": [1, 2]},
        {
            "idx": 7,
            "audio_path": "/abs/b.wav",
            "lyrics": "[verse] b .",
            "sketch_path": "s.npy",
            "language": "ja",
            "song_id": "S",
            "license": "CC-BY",
            "split": "val",
            "custom": 3,
            "sections": [
                {"tag": "[verse]", "start": 0, "end": 2.5, "text": "b ."},
                {"tag": "outro", "start": 2.5, "end": 4},
            ],
        },
    ]
    path = write_manifest(rows, tmp_path / "m.jsonl")
    records, problems = read_manifest(path)
    assert problems == []
    a, b = records
    assert a.audio_path == str(tmp_path / "x/a.wav") and a.prompt_wav == str(tmp_path / "p.wav")
    assert a.song_id == "a" and a.sketch_tokens == [1, 2]
    assert b.idx == "7" and b.audio_path == "/abs/b.wav" and b.split == "val" and b.extra == {"custom": 3}
    assert [s.tag for s in b.sections] == ["verse", "outro"] and b.sections[1].vocal is False
    # a record written back reads the same
    records2, _ = read_manifest(write_manifest(records, tmp_path / "m2.jsonl"))
    assert records2[1].sections == b.sections and records2[1].extra == b.extra


def test_every_bad_line_is_reported_with_line_and_reason(tmp_path):
    good = {"idx": "ok", "audio_path": "a.wav", "lyrics": "[verse] a ."}
    lines = [
        json.dumps(good).encode(),
        b'{"idx": "broken", "audio_path": ',  # malformed
        json.dumps({"idx": "ok", "audio_path": "b.wav"}).encode(),  # duplicate idx
        '{"idx": "latin", "audio_path": "caf\xe9.wav"}'.encode("latin-1"),  # not UTF-8
        json.dumps({"idx": "noaudio", "lyrics": "[verse] x"}).encode(),
        json.dumps([1, 2]).encode(),
        json.dumps({"idx": "tok", "audio_path": "a.wav", "sketch_tokens": [1, "2"]}).encode(),
        json.dumps({"idx": "lang", "audio_path": "a.wav", "language": "xx"}).encode(),
        json.dumps(
            {"idx": "sec", "audio_path": "a.wav", "sections": [{"tag": "verse", "start": 3, "end": 1}]}
        ).encode(),
        json.dumps(
            {"idx": "sec2", "audio_path": "a.wav", "sections": [{"tag": "inst", "start": 0, "end": 1, "text": "words"}]}
        ).encode(),
        b"",
        json.dumps({"idx": "ok2", "audio_path": "c.wav"}).encode(),
    ]
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join(lines))
    records, problems = read_manifest(path)
    assert [r.idx for r in records] == ["ok", "ok2"]
    by_line = {p.line: p for p in problems}
    assert set(by_line) == {2, 3, 4, 5, 6, 7, 8, 9, 10}
    assert by_line[2].kind == "malformed_json" and by_line[3].kind == "duplicate_idx"
    assert by_line[4].kind == "not_utf8" and by_line[5].field == "audio_path"
    assert by_line[7].field == "sketch_tokens" and by_line[8].field == "language"
    assert "start < end" in by_line[9].reason and "must not carry text" in by_line[10].reason
    assert all(str(path) in str(p) for p in problems)


def test_missing_manifest_is_a_problem_not_a_crash(tmp_path):
    records, problems = read_manifest(tmp_path / "nope.jsonl")
    assert records == [] and problems[0].kind == "missing_file"
