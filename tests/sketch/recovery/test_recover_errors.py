"""What ``recover`` refuses and how it says so: an incomplete corpus (naming the tasks to rerun), bad request and
held-out lines (file:line and the field), a MuQ other than the corpus's, flags that do not fit the stage."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from songbloom.sketch import SketchCodebook
from songbloom.sketch.cli import main
from songbloom.sketch.recovery import CorpusIncompleteError, Recovery, RecoveryConfig, corpus_status
from songbloom.sketch.recovery.fit import ProbeFitSettings
from tests.sketch.recovery.conftest import one_thread
from tests.sketch.recovery.recover_world import World, build_world

SONGS = ["--songs-per-request", "2"]


def run(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(argv)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    w = build_world(tmp_path_factory.mktemp("recover_errors"))
    lines = w.requests.read_text(encoding="utf-8").splitlines()
    bad = [lines[0], "{not json", json.dumps({"idx": "gone", "lyrics": "[verse] ない", "prompt_wav": "missing.wav"}),
           lines[1]]
    w.requests.write_text("\n".join(bad) + "\n", encoding="utf-8")  # 2 usable lines x 2 = 4 songs
    return w


@pytest.fixture(scope="module")
def half_corpus(world: World) -> str:
    """Task 0 of 2 generated, task 1 not: the output of that run."""
    with one_thread():
        code, out = run(world.args("work", *SONGS, "--stage", "generate", "--task-index", "0", "--num-tasks", "2"))
    assert code == 0, out[-3000:]
    return out


@pytest.fixture(scope="module")
def api_codebook(world: World, half_corpus: str) -> SketchCodebook:
    """Task 1 generated too (the corpus is complete), then fitted through the Python API into api.safetensors."""
    with one_thread():
        code, out = run(world.args("work", *SONGS, "--stage", "generate", "--task-index", "1", "--num-tasks", "2"))
        assert code == 0, out[-3000:]
        config = RecoveryConfig(work_dir=world.root / "work", muq=str(world.muq), out=world.root / "api.safetensors",
                                fit=ProbeFitSettings(epochs=3))
        return Recovery(config).fit()


def test_bad_request_lines_are_named_with_file_and_line(world: World, half_corpus: str):
    assert "requests: 2 line(s) gave no songs:" in half_corpus
    assert f"{world.requests}:2: not valid JSON" in half_corpus
    assert f"{world.requests}:3 (idx gone): prompt_wav 'missing.wav' not found" in half_corpus
    assert corpus_status(world.root / "work" / "corpus").planned == 4


def test_fit_refuses_an_incomplete_corpus_naming_the_tasks(world: World, half_corpus: str):
    code, out = run(world.args("work", *SONGS, "--stage", "fit"))
    assert code == 2 and "error:" in out
    assert "the corpus is not complete (task(s) 1 of 2" in out and "--task-index I --num-tasks 2" in out
    assert "task 1/2: 0/2 finished; missing ['r0_s1', 'r1_s1']" in out
    assert not (world.root / "work" / "recovered_codebook.safetensors").exists()
    with pytest.raises(CorpusIncompleteError, match="task\\(s\\) 1 of 2"):
        Recovery(RecoveryConfig(work_dir=world.root / "work", muq=str(world.muq))).fit()


def test_finished_corpus_fits_through_the_python_api_and_checks_the_muq(world: World, api_codebook):
    assert (world.root / "api.safetensors").is_file() and api_codebook.recovery["corpus"]["songs"] == 4
    assert api_codebook.metadata["training"]["fit"]["epochs"] == 3
    other = RecoveryConfig(work_dir=world.root / "work", tiny_muq_seed=1, out=world.root / "other.safetensors")
    with pytest.raises(ValueError, match="pass the same --muq"):
        Recovery(other).fit()


def test_bad_heldout_lines_are_skipped_and_named(world: World, api_codebook, tmp_path: Path):
    heldout = tmp_path / "heldout.jsonl"
    good = json.loads(world.heldout.read_text(encoding="utf-8").splitlines()[0])
    good["audio"] = str(world.root / "data" / good["audio"])
    heldout.write_text("\n".join([json.dumps(good, ensure_ascii=False), json.dumps({"audio": good["audio"]}),
                                  json.dumps({"audio": "nowhere.wav", "lyrics": "[verse] あ"})]) + "\n")
    argv = world.args("work", *SONGS, "--stage", "report", "--heldout", str(heldout), "--out",
                      str(world.root / "api.safetensors"), "--report-out", str(tmp_path / "r.json"))
    with one_thread():
        code, out = run(argv)
    assert code == 0, out[-3000:]
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["songs"]["count"] == 1 and len(report["skipped"]) == 2
    assert f"{heldout}:2: field 'lyrics' is missing" in report["skipped"][0]
    assert f"{heldout}:3: audio 'nowhere.wav' not found" in report["skipped"][1]
    # the printed table says so too, not only the log lines above it
    assert "1 held-out song(s)" in out and "2 skipped (listed below)" in out and f"skipped: {heldout}:3" in out
    heldout.write_text(json.dumps({"audio": "nowhere.wav", "lyrics": "x"}) + "\n")
    code, out = run(argv)
    assert code == 2 and "no usable song (1 skipped)" in out and f"{heldout}:1" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--stage", "all", "--task-index", "0", "--num-tasks", "2"], "--task-index/--num-tasks belong to"),
        (["--stage", "report"], "--heldout is required"),
        (["--stage", "report", "--heldout", "songs.jsonl"], "no recovered codebook yet; run the fit first"),
    ],
)
def test_flags_that_do_not_fit_the_stage(world: World, extra: list[str], message: str):
    code, out = run(world.args("other", *extra))
    assert code == 2 and message in out


def test_unknown_base_is_named(world: World):
    argv = world.args("other", "--stage", "generate")
    argv[argv.index("--base") + 1] = "no_such_model"
    code, out = run(argv)
    assert code == 2 and "--base no_such_model: no such file or directory, and not a release name" in out
