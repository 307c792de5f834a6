#!/usr/bin/env python
"""Sketch-id recovery on SLURM: the corpus as an array job, then the fit as a job that depends on it.

    python scripts/slurm/submit_recover.py --num-tasks 8 --set partition=gpu -- \\
        --base ckpts/songbloom_full_150s --requests data/recover/requests.jsonl --work-dir work/recover_150s \\
        --out codebooks/recovered_150s.safetensors --layers 6 9 12 --dtype bfloat16 --device cuda
    python scripts/slurm/submit_recover.py --num-tasks 8 --submit -- ...   # also submit both

The flags after ``--`` are ``python -m songbloom.sketch recover``'s and go to both jobs (without them, the recipes'
``args`` in recipes.yaml); ``--heldout`` among them makes the second job write the report too. Both scripts are
rendered from the ``recover_generate`` / ``recover_fit`` recipes (``--set`` changes a field of both, ``--fit-set``
of the fit only), checked like ``render.py --check``, and written to ``--out-dir``. With ``--submit`` the array goes
in first and the fit with ``--dependency=afterany:<array job>``: it starts when every task has ended, and when one
failed it stops naming the tasks to rerun (rerun them, then the fit job; finished work is kept).
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import ModuleType


def _beside(name: str) -> ModuleType:
    """A script module that lives beside this file (scripts/ is not a package and sys.path stays untouched)."""
    path = Path(__file__).resolve().parent / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"songbloom_slurm_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = _beside("render")

GENERATE, FIT = "recover_generate", "recover_fit"


def _pairs(items: list[str], flag: str, ap: argparse.ArgumentParser) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            ap.error(f"{flag} {item!r}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        out[key] = value
    return out


def render_pair(
    num_tasks: int, sets: dict[str, str], fit_sets: dict[str, str], recover_args: list[str]
) -> dict[str, str]:
    """The two scripts (recipe name -> text): the corpus array of ``num_tasks`` tasks and the fit."""
    common = dict(sets)
    if recover_args:
        common["args"] = " ".join(shlex.quote(a) for a in recover_args)
    generate = render.resolve(GENERATE, {**common, "num_tasks": str(num_tasks)})
    if "max_parallel" not in sets:
        generate["max_parallel"] = num_tasks
    args = str(render.resolve(FIT, common)["args"]).split()
    stages = "fit report" if "--heldout" in args else "fit"
    fit = render.resolve(FIT, {"stages": stages, **common, **fit_sets})
    return {GENERATE: render.render(generate), FIT: render.render(fit)}


def job_id(sbatch_output: str) -> str:
    """The job id in ``sbatch --parsable`` output (``id`` or ``id;cluster``) or in ``Submitted batch job <id>``."""
    found = re.findall(r"\d+", sbatch_output.strip().split(";")[0])
    if not found:
        raise SystemExit(f"sbatch printed no job id: {sbatch_output!r}")
    return found[-1]


def submit(paths: dict[str, Path]) -> tuple[str, str]:
    """Submit the array, then the fit depending on it; (array job id, fit job id)."""
    def sbatch(*args: str) -> str:
        done = subprocess.run(["sbatch", "--parsable", *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"sbatch {' '.join(args)} failed (exit {done.returncode}): {done.stderr.strip()}")
        return job_id(done.stdout)

    array = sbatch(str(paths[GENERATE]))
    fit = sbatch(f"--dependency=afterany:{array}", str(paths[FIT]))
    return array, fit


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    recover_args: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, recover_args = argv[:i], argv[i + 1 :]
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--num-tasks", type=int, default=8, help="array tasks of the corpus")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a recipe field of both jobs")
    ap.add_argument("--fit-set", action="append", default=[], metavar="KEY=VALUE", help="a field of the fit job")
    ap.add_argument("--out-dir", default=".", help="where the two .sbatch scripts are written")
    ap.add_argument("--submit", action="store_true", help="submit both (default: write them and print the commands)")
    args = ap.parse_args(argv)
    if args.num_tasks < 1:
        ap.error("--num-tasks must be >= 1")
    scripts = render_pair(args.num_tasks, _pairs(args.set, "--set", ap), _pairs(args.fit_set, "--fit-set", ap),
                          recover_args)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    problems = []
    for name, text in scripts.items():
        paths[name] = out / f"{name}.sbatch"
        paths[name].write_text(text)
        problems += [f"{name}: {p}" for p in render.check_script(text)]
    for p in problems:
        print(f"submit_recover.py: {p}", file=sys.stderr)
    if problems:
        return 1
    if not args.submit:
        print(f"wrote {paths[GENERATE]} and {paths[FIT]}; submit them with:")
        print(f"  JOB=$(sbatch --parsable {paths[GENERATE]})")
        print(f"  sbatch --dependency=afterany:$JOB {paths[FIT]}")
        return 0
    array, fit = submit(paths)
    print(f"corpus array job {array} ({args.num_tasks} tasks); fit job {fit} (after every task of {array})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
