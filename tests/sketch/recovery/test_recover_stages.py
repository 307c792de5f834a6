"""``python -m songbloom.sketch recover`` stage by stage on a tiny release-format model: two array tasks of the corpus,
the fit (without the base model), the report on held-out songs, and an ``all`` rerun that finds everything done."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from songbloom.building.sketch_tables import sketch_tables_sha256
from songbloom.checkpoints.bundle import SongBloom
from songbloom.checkpoints.fingerprint import file_fingerprint
from songbloom.sketch import SketchTokenizer, load_codebook, load_muq, recovered_codebook
from songbloom.sketch.cli import main
from songbloom.sketch.recovery import corpus_status, load_corpus
from tests.sketch.recovery.conftest import one_thread
from tests.sketch.recovery.recover_world import BASE_NAME, World, build_world

SONGS = ["--songs-per-request", "2"]  # 3 request lines x 2 = 6 songs


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> tuple[World, dict[str, str]]:
    """The world after generate (task 0 and 1 of 2), fit and report, run as separate commands; their outputs."""
    world = build_world(tmp_path_factory.mktemp("recover_stages"))
    outputs = {}
    capture = _Capture()
    with one_thread():
        for name, stage in (("task0", ["--stage", "generate", "--task-index", "0", "--num-tasks", "2"]),
                            ("task1", ["--stage", "generate", "--task-index", "1", "--num-tasks", "2"])):
            outputs[name] = capture.run(world.args("work", *SONGS, *stage))
        # The fit needs no base model: the corpus plan says what it needs (also to read the user's songs, on which
        # the switch bonus is chosen: the --heldout ones here).
        fit_args = world.args("work", *SONGS, "--stage", "fit", "--heldout", str(world.heldout))
        i = fit_args.index("--base")
        outputs["fit"] = capture.run(fit_args[:i] + fit_args[i + 2 :])
        outputs["report"] = capture.run(world.args("work", *SONGS, "--stage", "report", "--heldout",
                                                   str(world.heldout)))
    return world, outputs


class _Capture:
    """Run ``main`` and return what it printed (stdout + stderr), asserting exit code 0."""

    def run(self, argv: list[str]) -> str:
        import contextlib
        import io

        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = main(argv)
        assert code == 0, out.getvalue()[-3000:]
        return out.getvalue()


def test_array_tasks_make_disjoint_parts_of_one_corpus(staged):
    world, outputs = staged
    corpus = world.root / "work" / "corpus"
    assert "corpus task 0/2: 3 song(s) written" in outputs["task0"]
    assert "corpus task 1/2: 3 song(s) written" in outputs["task1"]
    status = corpus_status(corpus)
    assert status.complete and status.planned == 6 and status.done == 6 and status.num_tasks == 2
    base = load_corpus(corpus)[0].meta["base"]
    model = SongBloom.from_release_dir(world.base).model
    # The base's description in the corpus: the training name and the sketch tables' hash.
    assert base["name"] == BASE_NAME and base["sketch_tables_sha256"] == sketch_tables_sha256(model)


def test_artifact_is_a_linear_probe_recovered_from_the_base(staged):
    world, outputs = staged
    path = world.root / "work" / "recovered_codebook.safetensors"
    assert f"recovered codebook: {path}" in outputs["fit"] and "kind=linear_probe" in outputs["fit"]
    cb = load_codebook(path)
    assert cb.tokenizer_kind == "linear_probe" and cb.num_codes == 64 and cb.metadata["feature_dim"] == 64
    assert cb.metadata["muq_model_id"] == str(world.muq.resolve()) and cb.metadata["muq_layer"] == 2
    rec = cb.recovery
    model = SongBloom.from_release_dir(world.base).model
    assert rec["base"] == {"name": BASE_NAME, "sketch_tables_sha256": sketch_tables_sha256(model), "num_pitch": 64,
                           "file_fingerprint": file_fingerprint(world.base / f"{BASE_NAME}.pt")}
    assert rec["method"] == "linear_probe_self_distillation"
    status = corpus_status(world.root / "work" / "corpus")
    assert (rec["corpus"]["songs"], rec["corpus"]["frames"]) == (6, status.frames)
    assert math.isclose(rec["corpus"]["seconds"], status.frames / 25)
    for key in ("agreement", "agreement_top5", "cross_entropy", "most_frequent_code_rate", "heldout_songs"):
        assert 0 <= rec["metrics"][key] < math.inf, key
    # What training reads: the tables this codebook belongs to.
    assert recovered_codebook(path).sketch_tables_sha256 == sketch_tables_sha256(model)
    # A consumer tokenises audio with it as with any codebook.
    tok = SketchTokenizer(cb, muq=load_muq(world.muq))
    import soundfile as sf
    import torch

    wav, sr = sf.read(world.root / "data" / "h0.wav", dtype="float32")
    ids = tok.tokenize(torch.from_numpy(wav.mean(1)), sr)
    assert ids.shape == (1, 50) and int(ids.max()) < 64


def test_report_compares_recovered_with_fresh_ids(staged):
    world, outputs = staged
    report = json.loads((world.root / "work" / "report.json").read_text())
    for key in ("ar_loss", "flow_loss", "ar_info", "entropy", "change_rate", "codes_used"):
        assert set(report[key]) == {"recovered", "fresh"}, key
        assert all(math.isfinite(v) for v in report[key].values()), key
    assert report["format"] == "songbloom-sketch-recovery-report" and report["base"]["name"] == BASE_NAME
    assert report["codebooks"]["recovered"]["tables_match"] is True
    assert report["codebooks"]["fresh"]["num_codes"] == 64 and report["songs"]["count"] == 3
    # 2 s, 2 s and 1.8 s songs, cut to whole patches of 4 frames.
    assert report["songs"]["frames"] == 48 + 48 + 44 and report["skipped"] == []
    assert report["verdict"]["better"] in ("recovered", "fresh", "mixed") and report["verdict"]["text"]
    assert math.isclose(report["reference"]["ln_num_pitch"], math.log(64))
    assert "AR loss (nats)" in outputs["report"] and "verdict:" in outputs["report"]
    assert (world.root / "work" / "report" / "fresh_kmeans.safetensors").is_file()


def test_all_after_the_stages_redoes_nothing_and_reuses_the_encodings(staged, tmp_path: Path):
    world, _ = staged
    work = world.root / "work"
    codebook = work / "recovered_codebook.safetensors"
    before = codebook.stat().st_mtime_ns
    cached = sorted((work / "report" / "songs").iterdir())
    with one_thread():
        out = _Capture().run(world.args("work", *SONGS, "--heldout", str(world.heldout),
                                        "--report-out", str(tmp_path / "again.json")))
    assert "corpus task 0/1: 0 song(s) written (0 frames), 6 already done" in out
    assert codebook.stat().st_mtime_ns == before  # fitted on this corpus with these settings: kept
    assert sorted((work / "report" / "songs").iterdir()) == cached
    first = json.loads((work / "report.json").read_text())
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["ar_loss"] == first["ar_loss"] and again["flow_loss"] == first["flow_loss"]


def test_python_api_all_gives_the_codebook_of_the_array_tasks(staged, tmp_path: Path):
    """One ``all`` run (one task, through the Python API) makes the same songs as the two array tasks did, so the
    same probe: songs depend on their seeds only (one song per batch here)."""
    import torch

    from songbloom.config import SongBloomConfig
    from songbloom.sketch.recovery import CorpusSettings, RecoveryConfig, ReportSettings, recover
    from songbloom.sketch.recovery.corpus_plan import corpus_sampling
    from songbloom.sketch.recovery.fit import ProbeFitSettings

    world, _ = staged
    cfg = SongBloomConfig.from_name("tiny")
    # the command line's sampling: the corpus's (unsharpened, no penalty), its --steps and --max-duration
    params = corpus_sampling(cfg.inference, 30.0, steps=2)
    settings = CorpusSettings(songs_per_request=2, params=params, language="ja", feature_dtype="float32")
    config = RecoveryConfig(work_dir=tmp_path / "work", base=str(world.base), requests=world.requests,
                            muq=str(world.muq), device="cpu", fit=ProbeFitSettings(epochs=5),
                            report=ReportSettings(heldout=world.heldout, fresh_epochs=2, language="ja"),
                            progress=False)
    with one_thread():
        result = recover(config, "all", corpus_settings=settings)
    assert result.corpus.written == 6 and result.report["songs"]["count"] == 3
    staged_cb = load_codebook(world.root / "work" / "recovered_codebook.safetensors")
    for name in ("probe_weight", "probe_bias", "feature_mean", "feature_std"):
        assert torch.equal(result.codebook.tensors()[name], staged_cb.tensors()[name]), name
    assert result.codebook.codebook_hash == staged_cb.codebook_hash


def _fit(world: World, *extra: str) -> str:
    """The fit stage without the base model; what it printed."""
    fit_args = world.args("work", *SONGS, "--stage", "fit", *extra)
    i = fit_args.index("--base")
    with one_thread():
        return _Capture().run(fit_args[:i] + fit_args[i + 2 :])


def test_switch_bonus_is_chosen_on_the_users_songs(staged):
    world, outputs = staged
    cb = load_codebook(world.root / "work" / "recovered_codebook.safetensors")
    metrics = cb.recovery["metrics"]
    assert cb.metadata["training"]["fit"]["calibrate_switching"] and cb.switch_bonus == metrics["switch_bonus"]
    # the three --heldout songs (2 s, 2 s, 1.8 s), read up to the corpus's 1.2 s and cut to whole patches
    assert metrics["calibration_songs"] == 3 and metrics["calibration_frames"] == 3 * 28
    assert abs(metrics["calibration_change_rate"] - metrics["label_change_rate"]) < 0.1
    calibration = cb.metadata["training"]["calibration_songs"]
    assert calibration == {"file": str(world.heldout.resolve()), "skipped": []}
    assert cb.metadata["training"]["fit_record"]["calibration_songs"]
    assert "chosen on 3 of your songs" in outputs["fit"]


def test_fit_with_switch_calibration_writes_a_bonus_every_consumer_decodes_with(staged, tmp_path: Path):
    world, _ = staged
    out = tmp_path / "switching.safetensors"
    printed = _fit(world, "--out", str(out))  # no songs given: chosen on held-out generations
    assert "held-out generations (no --calibration-songs)" in printed
    cb = load_codebook(out)
    metrics = cb.recovery["metrics"]
    assert cb.switch_bonus == metrics["switch_bonus"] and cb.metadata["training"]["fit"]["calibrate_switching"]
    assert metrics["calibration_songs"] == 0 and "calibration_songs" not in cb.metadata["training"]
    for key in ("label_change_rate", "argmax_change_rate", "decoded_change_rate", "decoded_agreement"):
        assert 0.0 <= metrics[key] <= 1.0, key
    plain_path = tmp_path / "plain.safetensors"
    assert "switch bonus" not in _fit(world, "--out", str(plain_path), "--no-probe-calibrate-switching")
    plain = load_codebook(plain_path)
    assert plain.switch_bonus == 0.0 and "switch_bonus" not in plain.recovery["metrics"]
    import soundfile as sf
    import torch

    wav, sr = sf.read(world.root / "data" / "h0.wav", dtype="float32")
    ids = SketchTokenizer(cb, muq=load_muq(world.muq)).tokenize(torch.from_numpy(wav.mean(1)), sr)
    assert ids.shape == (1, 50) and int(ids.max()) < 64


def test_calibration_songs_skip_bad_lines_and_refit_when_they_change(staged, tmp_path: Path, capsys):
    world, _ = staged
    songs = tmp_path / "mine.jsonl"
    data = world.root / "data"
    songs.write_text("\n".join([
        json.dumps({"idx": "a", "audio": str(data / "h0.wav")}),  # no lyrics: not needed here
        json.dumps({"idx": "b", "audio": str(data / "gone.wav")}),
        "{not json",
        json.dumps({"idx": "c", "audio_path": str(data / "h2.flac"), "lyrics": "x"}),
    ]) + "\n", encoding="utf-8")
    out = tmp_path / "cb.safetensors"
    printed = _fit(world, "--out", str(out), "--calibration-songs", str(songs))
    cb = load_codebook(out)
    assert cb.recovery["metrics"]["calibration_songs"] == 2
    skipped = cb.metadata["training"]["calibration_songs"]["skipped"]
    assert len(skipped) == 2 and any("mine.jsonl:2 (idx b)" in s and "gone.wav" in s for s in skipped), skipped
    assert "2 of your songs" in printed and "2 skipped" in printed and "calibration song skipped" in printed
    first = out.stat().st_mtime_ns
    _fit(world, "--out", str(out), "--calibration-songs", str(songs))
    assert out.stat().st_mtime_ns == first  # same songs, same settings: kept
    songs.write_text(json.dumps({"idx": "a", "audio": str(data / "h1.wav")}) + "\n", encoding="utf-8")
    _fit(world, "--out", str(out), "--calibration-songs", str(songs))
    assert out.stat().st_mtime_ns != first and load_codebook(out).recovery["metrics"]["calibration_songs"] == 1
    fit_args = world.args("work", *SONGS, "--stage", "fit", "--out", str(out), "--calibration-songs", str(songs),
                          "--no-probe-calibrate-switching")
    i = fit_args.index("--base")
    assert _refused(fit_args[:i] + fit_args[i + 2 :], capsys) == "--no-probe-calibrate-switching turns off"
    nothing = tmp_path / "nothing.jsonl"
    nothing.write_text(json.dumps({"idx": "z", "audio": str(data / "gone.wav")}) + "\n", encoding="utf-8")
    argv = fit_args[:i] + fit_args[i + 2 : -3] + ["--calibration-songs", str(nothing), "--refit"]
    assert _refused(argv, capsys) == "no usable song"


def _refused(argv: list[str], capsys) -> str:
    """Run ``main``, expect exit 2; the part of the error the caller checks for."""
    with one_thread():
        code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    for expected in ("--no-probe-calibrate-switching turns off", "no usable song"):
        if expected in err:
            return expected
    return err
