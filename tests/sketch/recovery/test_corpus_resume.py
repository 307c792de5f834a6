"""Corpus runs that stop, split or come back: array tasks, resume after a kill, damaged files, other settings."""

from __future__ import annotations

import json

import pytest
import torch

from songbloom.config import SongBloomConfig
from songbloom.inference.generate import SamplingParams
from songbloom.sketch.recovery import (
    CorpusFileError,
    CorpusPlanMismatch,
    corpus_status,
    corpus_task,
    generate_corpus,
    load_corpus,
    read_plan,
)
from songbloom.sketch.recovery import corpus as corpus_module
from songbloom.sketch.recovery.corpus_files import song_path
from songbloom.sketch.recovery.corpus_plan import PLAN_FILE, corpus_sampling
from tests.sketch.recovery.conftest import LINES, MAX_FRAMES, copy_corpus, corpus_settings


def _song_files(out):
    return {p.name: p.read_bytes() for p in sorted((out / "songs").iterdir())}


def _assert_same_files(out, reference):
    """Byte for byte: tensors, header (plan hash, content hash) and skip markers."""
    got, want = _song_files(out), _song_files(reference)
    assert sorted(got) == sorted(want)
    differing = [name for name in want if got[name] != want[name]]
    assert not differing, f"files differ from the uninterrupted run: {differing}"


def _run(bundle, jobs, out, muq, **kw):
    settings = corpus_settings(**kw.pop("settings", {}))
    return generate_corpus(bundle, jobs, out, muq, settings, progress=False, **kw)


def test_two_array_tasks_are_disjoint_and_together_the_one_task_corpus(
    tmp_path, base_bundle, corpus_muq, job_file, reference_corpus, monkeypatch
):
    out = tmp_path / "split"
    r0 = _run(base_bundle, job_file, out, corpus_muq, task_index=0, num_tasks=2)
    half = corpus_status(out)
    assert half.num_tasks == 2 and half.tasks[0].complete and not half.tasks[1].complete
    assert sorted(half.tasks[1].missing) == ["a_s1", "b_s1"] and not half.complete
    # Task 1 from the SLURM array variables (--array=1-2: ids 1 and 2, min 1).
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "2")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    assert corpus_task() == (1, 2)
    r1 = _run(base_bundle, job_file, out, corpus_muq)
    assert (r0.task_index, r1.task_index) == (0, 1) and r0.planned == r1.planned == 2
    assert r0.written + r0.skipped_eos + r1.written + r1.skipped_eos == 4
    status = corpus_status(out)
    assert status.complete and status.planned == 4
    assert {i.name for i in read_plan(out).task_items(0, 2)} == {"a_s0", "b_s0"}
    # Same songs as the one-task run: a song depends only on its seed. Other batch neighbours change the float
    # rounding (not the ids) of the batched matmuls, so the latents and features agree to rounding.
    split, ref = load_corpus(out), load_corpus(reference_corpus)
    assert [s.name for s in split] == [s.name for s in ref]
    for a, b in zip(split, ref, strict=True):
        assert torch.equal(a.sketch_ids, b.sketch_ids) and a.meta["seed"] == b.meta["seed"]
        torch.testing.assert_close(a.latents, b.latents, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(a.features, b.features, atol=1e-3, rtol=1e-3)
    assert sorted(p.name for p in (out / "songs").iterdir()) == sorted(_song_files(reference_corpus))


def test_resume_after_a_kill_gives_the_files_of_an_uninterrupted_run(
    tmp_path, base_bundle, corpus_muq, job_file, reference_corpus, monkeypatch
):
    out = tmp_path / "killed"
    real_write = corpus_module.write_song
    written = []

    def write_then_die(path, tensors, header):
        if written:  # the second song file of the run: killed while writing it
            (path.parent / f".{path.name}.x1y2.tmp").write_bytes(b"half a file")
            raise KeyboardInterrupt
        written.append(path)
        return real_write(path, tensors, header)

    monkeypatch.setattr(corpus_module, "write_song", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        _run(base_bundle, job_file, out, corpus_muq)
    monkeypatch.setattr(corpus_module, "write_song", real_write)
    assert len(written) == 1 and not corpus_status(out).complete
    report = _run(base_bundle, job_file, out, corpus_muq)
    assert report.written >= 1 and report.already_done >= 2
    assert not list((out / "songs").glob(".*.tmp"))  # the partial file was removed
    _assert_same_files(out, reference_corpus)
    again = _run(base_bundle, job_file, out, corpus_muq)
    assert again.written == again.redone == again.recomputed == 0 and again.already_done == 4


def test_damaged_and_truncated_song_files_are_redone(tmp_path, base_bundle, corpus_muq, job_file, reference_corpus):
    out = copy_corpus(reference_corpus, tmp_path / "damaged")
    songs = [s.name for s in load_corpus(out, verify=False)]
    truncated, flipped = song_path(out, songs[0]), song_path(out, songs[-1])
    truncated.write_bytes(truncated.read_bytes()[:-100])
    data = bytearray(flipped.read_bytes())
    data[-7] ^= 0xFF  # one byte of tensor data: the size still fits, only the content hash tells
    flipped.write_bytes(bytes(data))
    quick = corpus_status(out)
    assert quick.damaged == [songs[0]]  # the header check sees the cut; the flipped byte needs verify
    assert sorted(corpus_status(out, verify=True).damaged) == sorted([songs[0], songs[-1]])
    with pytest.raises(CorpusFileError, match=f"{songs[0]}.safetensors"):
        load_corpus(out)
    report = _run(base_bundle, job_file, out, corpus_muq)
    assert report.redone == 2 and report.written == 2
    _assert_same_files(out, reference_corpus)
    assert corpus_status(out, verify=True).complete


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"settings": {"seed": 31}}, r"settings\.seed: 30 before, 31 now"),
        ({"settings": {"layers": (0, 1)}}, r"muq\.layers: \[0, 2\] before, \[0, 1\] now"),
        ({"settings": {"songs_per_request": 3}}, r"settings\.songs_per_request: 2 before, 3 now"),
        ({"settings": {"store_audio": False}}, r"settings\.store_audio: True before, False now"),
        # a corpus sampled with the release penalty does not resume without it (the corpus default changed)
        ({"settings": {"params": SamplingParams(SongBloomConfig.from_name("tiny").inference, max_frames=MAX_FRAMES,
                                                penalty_mode="none")}},
         r"sampling\.penalty_mode: .?release.? before, .?none.? now"),
        # nor one sampled with the model's settings under the unsharpened default; the message says how to go on
        ({"settings": {"params": corpus_sampling(SongBloomConfig.from_name("tiny").inference, MAX_FRAMES,
                                                 penalty_mode="release")}},
         r"sampling\.temp: 0\.9 before, 1\.0 now[\s\S]*continues with --corpus-sampling model"),
    ],
)
def test_resume_with_other_settings_is_refused(tmp_path, base_bundle, corpus_muq, job_file, reference_corpus, change,
                                               expected):
    out = copy_corpus(reference_corpus, tmp_path / "c")
    before = _song_files(out)
    with pytest.raises(CorpusPlanMismatch, match=expected) as err:
        _run(base_bundle, job_file, out, corpus_muq, **change)
    assert "Resume with exactly the settings it was started with, or write to a new output folder" in str(err.value)
    assert _song_files(out) == before


def test_resume_with_another_job_file_or_base_model_is_refused(tmp_path, base_bundle, corpus_muq, job_file,
                                                             reference_corpus):
    out = copy_corpus(reference_corpus, tmp_path / "c")
    jobs = tmp_path / "jobs.jsonl"
    lines = [*LINES[:2], {"idx": "d", "lyrics": "[verse] あたらしい", "prompt_wav": str(job_file.parent / "p0.wav")}]
    jobs.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
    (tmp_path / "p0.wav").write_bytes((job_file.parent / "p0.wav").read_bytes())
    (tmp_path / "p1.wav").write_bytes((job_file.parent / "p1.wav").read_bytes())
    with pytest.raises(CorpusPlanMismatch, match="songs: 4 planned before, 6 now"):
        _run(base_bundle, jobs, out, corpus_muq)
    other = copy_corpus(reference_corpus, tmp_path / "other_base")
    from tests.sketch.recovery.conftest import tiny_base

    with pytest.raises(CorpusPlanMismatch, match=r"base\.weights_fingerprint"):
        _run(tiny_base(eos_bias=0.0), job_file, other, corpus_muq)
    # Batch size and the task split are not content: resuming with others is fine (nothing left to do here).
    report = _run(base_bundle, job_file, out, corpus_muq, settings={"batch_size": 3}, task_index=1, num_tasks=3)
    assert report.written == 0 and report.already_done == report.planned


def test_a_damaged_plan_file_is_reported(tmp_path, base_bundle, corpus_muq, job_file, reference_corpus):
    out = copy_corpus(reference_corpus, tmp_path / "c")
    (out / PLAN_FILE).write_text('{"format": "songbloom-sketch-corpus-plan", "vers', encoding="utf-8")
    with pytest.raises(ValueError, match="damaged corpus plan .*delete it and run the generation again"):
        _run(base_bundle, job_file, out, corpus_muq)
    with pytest.raises(FileNotFoundError, match="not a corpus folder"):
        corpus_status(tmp_path / "nowhere")
