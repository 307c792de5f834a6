"""benchmarks/sketch_recovery.py's flags reach the proxy settings and the recovery command it runs (loaded by path,
as ``python benchmarks/sketch_recovery.py`` runs it)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from songbloom.proxy.benchmark import ProxySettings, recover_argv

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "sketch_recovery.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_sketch_recovery", BENCH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _settings(argv: list[str]):
    bench = _bench()
    return bench.settings_from_args(bench.build_parser().parse_args(argv))


def _penalty(settings) -> str:
    argv = recover_argv(Path("export"), Path("muq"), Path("jobs.jsonl"), Path("work"), Path("cb.safetensors"),
                        settings, 3)
    assert argv.count("--penalty-mode") == 1
    return argv[argv.index("--penalty-mode") + 1]


def test_the_corpus_samples_without_the_penalty_unless_asked():
    default = _settings(["--seed", "3", "--num-codes", "40"])
    assert (default.seed, default.num_codes) == (3, 40)
    assert _penalty(default) == "none"
    release = _settings(["--corpus-penalty-mode", "release", "--teacher-songs", "240"])
    assert _penalty(release) == "release" and release.teacher_songs == 240


def test_the_teacher_learns_480_songs_for_2000_steps_at_every_size():
    # 240 songs for 1000 steps left the teacher too unfaithful at 32-100 codes (agreement failed on fresh seeds)
    for k in (16, 64, 100, 128, 256):
        settings = _settings(["--num-codes", str(k)])
        assert (settings.teacher_songs, settings.teacher_steps) == (480, 2000), k
    assert ProxySettings(num_codes=32).teacher_steps == 2000  # the Python API gets the same teacher
    mine = _settings(["--num-codes", "256", "--teacher-songs", "300", "--teacher-steps", "500"])
    assert (mine.teacher_songs, mine.teacher_steps) == (300, 500)  # the user's numbers win


def test_the_corpus_sampling_reaches_recover():
    def sampling(settings) -> str:
        argv = recover_argv(Path("export"), Path("muq"), Path("jobs.jsonl"), Path("work"), Path("cb.safetensors"),
                            settings, 3)
        return argv[argv.index("--corpus-sampling") + 1]

    assert sampling(_settings([])) == "unsharpened"
    assert sampling(_settings(["--corpus-sampling", "model"])) == "model"


def test_code_counts_outside_16_to_256_are_refused():
    with pytest.raises(SystemExit, match="choose 16..256"):
        _settings(["--num-codes", "300"])


def test_switch_calibration_is_on_by_default_and_chosen_on_real_songs():
    def argv(settings, calibration=None) -> list[str]:
        return recover_argv(Path("export"), Path("muq"), Path("jobs.jsonl"), Path("work"), Path("cb.safetensors"),
                            settings, 3, calibration)

    default = _settings([])
    assert default.calibrate_switching and default.calibration_songs == 24
    args = argv(default, Path("cal/songs.jsonl"))
    assert args.count("--probe-calibrate-switching") == 1 and "--no-probe-calibrate-switching" not in args
    assert args[args.index("--calibration-songs") + 1] == "cal/songs.jsonl"
    assert "--calibration-songs" not in argv(_settings(["--calibration-songs", "0"]))
    off = _settings(["--no-calibrate-switching"])
    assert not off.calibrate_switching and "--no-probe-calibrate-switching" in argv(off)
    assert "--probe-calibrate-switching" not in argv(off)
