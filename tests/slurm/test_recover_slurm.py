"""Sketch-id recovery on SLURM (scripts/slurm/submit_recover.py): the corpus array and the dependent fit render and
pass the checks, the fit is submitted after the array; on the local test cluster the pair runs the tiny world."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SUBMIT = REPO / "scripts" / "slurm" / "submit_recover.py"


@pytest.fixture(scope="module")
def submit_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("songbloom_submit_recover", SUBMIT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_array_and_fit_render_valid_scripts(submit_module, render_module):
    flags = ["--base", "ckpts/my model", "--work-dir", "work/r", "--heldout", "songs.jsonl", "--dtype", "bfloat16"]
    scripts = submit_module.render_pair(4, {"partition": "gpu"}, {"time": "01:00:00"}, flags)
    gen, fit = scripts["recover_generate"], scripts["recover_fit"]
    for text in (gen, fit):
        assert render_module.check_script(text) == [] and "{{" not in text and "#SBATCH --partition=gpu" in text
        assert "--base 'ckpts/my model' --work-dir work/r --heldout songs.jsonl --dtype bfloat16" in text
    gen_opts, fit_opts = render_module.sbatch_options(gen), render_module.sbatch_options(fit)
    assert gen_opts["--array"] == "0-3%4" and gen_opts["--output"].endswith("%A_%a.out")
    assert "--array" not in fit_opts and fit_opts["--time"] == "01:00:00" and gen_opts["--time"] != "01:00:00"
    assert "srun python -m songbloom.sketch recover --stage generate --base" in gen
    assert "srun python -m songbloom.sketch recover --stage fit report --base" in fit  # --heldout: the report too
    plain = submit_module.render_pair(2, {}, {}, ["--work-dir", "w"])["recover_fit"]
    assert "recover --stage fit --work-dir w" in plain
    # Without flags the recipes' own (GPU, bf16) arguments are used.
    default = submit_module.render_pair(8, {}, {}, [])["recover_generate"]
    assert "--dtype bfloat16 --device cuda" in default and "#SBATCH --gpus-per-node=1" in default


def test_submit_puts_the_fit_after_the_whole_array(tmp_path: Path):
    stubs = tmp_path / "bin"
    stubs.mkdir()
    log = tmp_path / "sbatch.log"
    (stubs / "sbatch").write_text(
        f'#!/bin/sh\necho "$@" >> {log}\nn=$(wc -l < {log}); echo "$((700 + n));local"\n'
    )
    (stubs / "sbatch").chmod(0o755)
    env = {**os.environ, "PATH": f"{stubs}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        [sys.executable, str(SUBMIT), "--num-tasks", "3", "--out-dir", str(tmp_path / "jobs"), "--submit", "--",
         "--base", "b", "--work-dir", "w"],
        capture_output=True, text=True, env=env, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert calls == [f"--parsable {tmp_path / 'jobs' / 'recover_generate.sbatch'}",
                     f"--parsable --dependency=afterany:701 {tmp_path / 'jobs' / 'recover_fit.sbatch'}"]
    assert "corpus array job 701 (3 tasks); fit job 702" in done.stdout


def test_a_script_that_fails_the_check_is_not_submitted(submit_module, tmp_path: Path, capsys):
    code = submit_module.main(["--out-dir", str(tmp_path), "--set", "extra_sbatch=#SBATCH --ntasks=4", "--submit",
                               "--", "--work-dir", "w"])
    err = capsys.readouterr().err
    assert code == 1 and "recover_generate: --ntasks/-n is set" in err and "recover_fit: --ntasks/-n is set" in err


@pytest.mark.slurm
def test_recovery_array_then_fit_on_the_cluster(slurm_cluster, python_exe, tmp_path: Path):
    from tests.sketch.recovery.recover_world import FAST, build_world

    world = build_world(tmp_path / "world")
    flags = ["--base", str(world.base), "--muq", str(world.muq), "--requests", str(world.requests),
             "--work-dir", str(tmp_path / "work"), "--songs-per-request", "2", "--heldout", str(world.heldout), *FAST]
    sets = [f"workdir={REPO}", "setup=", f"python={python_exe}", "gpus_per_node=", "mem=", "cpus_per_task=1",
            "time=00:10:00", f"log_dir={tmp_path}"]
    done = subprocess.run(
        [python_exe, str(SUBMIT), "--num-tasks", "2", "--out-dir", str(tmp_path), "--submit",
         *[x for s in sets for x in ("--set", s)], "--", *flags],
        capture_output=True, text=True, env=slurm_cluster.env, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    words = done.stdout.split()
    array, fit = words[words.index("array") + 2], words[words.index("fit") + 2]
    states = slurm_cluster.wait(array, 300)
    assert len(states) == 2 and all(s["JobState"] == "COMPLETED" for s in states), states
    (fit_state,) = slurm_cluster.wait(fit, 300, tmp_path / f"sb-recover-fit-{fit}.out")
    log = (tmp_path / f"sb-recover-fit-{fit}.out").read_text()
    assert fit_state["JobState"] == "COMPLETED", log[-3000:]
    assert "recovered codebook:" in log and "verdict:" in log
    report = json.loads((tmp_path / "work" / "report.json").read_text())
    assert report["songs"]["count"] == 3 and set(report["ar_loss"]) == {"recovered", "fresh"}
