#!/usr/bin/env python
"""Print a resolved sbatch script for a named recipe (a dry run: nothing is submitted).

    python scripts/slurm/render.py --list
    python scripts/slurm/render.py lora_1gpu                        # print the script
    python scripts/slurm/render.py full_8gpu --set partition=a100 --set time=12:00:00 -- trainer.max_steps=5000
    python scripts/slurm/render.py multinode --check -o job.sbatch && sbatch job.sbatch

Recipes live in scripts/slurm/recipes.yaml, templates beside it. Extra arguments after ``--`` are appended to
the training command (Hydra overrides). ``--check`` validates the result (one task per device, srun, signal,
requeue, append mode) and exits 1 on a problem.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
RECIPES = HERE / "recipes.yaml"
FIELD = re.compile(r"\{\{(\w+)\}\}")


def load_recipes(path: Path = RECIPES) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    data = yaml.safe_load(path.read_text())
    return dict(data.get("defaults") or {}), dict(data.get("recipes") or {})


def resolve(
    name: str,
    sets: dict[str, str] | None = None,
    extra_args: list[str] | None = None,
    recipes_path: Path = RECIPES,
) -> dict[str, Any]:
    """The recipe's fields after defaults, ``--set`` values and derived fields (trainer layout, array range)."""
    defaults, recipes = load_recipes(recipes_path)
    if name not in recipes:
        raise SystemExit(f"unknown recipe {name!r}; choose from: {', '.join(sorted(recipes))}")
    values = {**defaults, **recipes[name], **(sets or {})}
    args = " ".join(str(values.get("args") or "").split())
    if values["template"] == "train.sbatch":
        # One task per device: the Trainer's layout is derived from the #SBATCH lines, never typed twice.
        args = f"{args} trainer.devices={values['devices']} trainer.num_nodes={values['nodes']}".strip()
    if extra_args:
        args = f"{args} {' '.join(shlex.quote(a) for a in extra_args)}".strip()
    values["args"] = args
    if "num_tasks" in values:
        values["last_task"] = int(values["num_tasks"]) - 1
        values.setdefault("max_parallel", values["num_tasks"])
    return values


def render(values: dict[str, Any]) -> str:
    """Fill the template; a line whose fields are all empty is dropped (optional #SBATCH lines)."""
    template = (HERE / str(values["template"])).read_text()
    out = []
    for line in template.splitlines():
        fields = FIELD.findall(line)
        if not fields:
            out.append(line)
            continue
        missing = [f for f in fields if f not in values]
        if missing:
            raise SystemExit(f"{values['template']}: no value for {', '.join(missing)} (add it with --set)")
        if all(values[f] in ("", None) for f in fields):
            continue
        out.append(FIELD.sub(lambda m: str(values[m.group(1)]), line))
    return "\n".join(out) + "\n"


def sbatch_options(script: str) -> dict[str, str]:
    """``#SBATCH --key=value`` lines as a dict (flags without a value map to "")."""
    opts = {}
    for line in script.splitlines():
        m = re.match(r"^#SBATCH\s+(--[\w-]+)(?:[= ](.*))?$", line.strip())
        if m:
            opts[m.group(1)] = (m.group(2) or "").strip()
    return opts


def check_script(script: str) -> list[str]:
    """Problems that would break a multi-process or preemptible job (empty list = fine)."""
    opts = sbatch_options(script)
    problems = []
    srun = [line for line in script.splitlines() if re.match(r"^\s*srun\b", line)]
    if not srun:
        problems.append("no srun line: ranks must be started by srun (one task per device)")
    if "--ntasks" in opts or re.search(r"^#SBATCH\s+-n\s", script, re.M):
        problems.append("--ntasks/-n is set: Lightning needs --ntasks-per-node (one task per device)")
    if "--requeue" not in opts:
        problems.append("#SBATCH --requeue missing: the job cannot be requeued after preemption")
    if opts.get("--open-mode") != "append":
        problems.append("#SBATCH --open-mode=append missing: a requeue would truncate the log")
    if "--array" not in opts and re.search(r"\btrain\.py\b", " ".join(srun)):  # a training job
        if not re.match(r"^(SIG)?[A-Z0-9]+@\d+$", opts.get("--signal", "")):
            problems.append("#SBATCH --signal=<SIG>@<seconds> missing: no warning before the time limit")
        train = " ".join(srun)
        m = re.search(r"trainer\.devices=(\S+)", train)
        if not m or m.group(1) != opts.get("--ntasks-per-node"):
            problems.append(
                f"trainer.devices={m.group(1) if m else '(unset)'} differs from "
                f"--ntasks-per-node={opts.get('--ntasks-per-node')}"
            )
        m = re.search(r"trainer\.num_nodes=(\S+)", train)
        if not m or m.group(1) != opts.get("--nodes"):
            problems.append(
                f"trainer.num_nodes={m.group(1) if m else '(unset)'} differs from --nodes={opts.get('--nodes')}"
            )
    return problems


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("recipe", nargs="?")
    ap.add_argument("--list", action="store_true", help="list the recipes")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe field")
    ap.add_argument("--check", action="store_true", help="validate the script; exit 1 on a problem")
    ap.add_argument("-o", "--output", help="write the script here instead of stdout")
    ap.add_argument("--recipes", default=str(RECIPES), help="recipes file")
    args = ap.parse_args(argv)
    if args.list or not args.recipe:
        _, recipes = load_recipes(Path(args.recipes))
        for name, r in recipes.items():
            print(f"{name:18s} {r.get('description', '')}")
        return 0
    sets = {}
    for item in args.set:
        if "=" not in item:
            ap.error(f"--set {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        sets[k] = v
    script = render(resolve(args.recipe, sets, extra, Path(args.recipes)))
    if args.output:
        Path(args.output).write_text(script)
    else:
        sys.stdout.write(script)
    if args.check:
        problems = check_script(script)
        for p in problems:
            print(f"render.py: {args.recipe}: {p}", file=sys.stderr)
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
