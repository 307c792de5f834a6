"""``python -m songbloom.plan [overrides...]`` (also ``songbloom-plan``): peak GPU memory of ``train.py
[overrides...]`` before the first GPU hour.

The overrides are those of ``train.py`` (``experiment=...``, ``lora=...``, ``training.gradient_checkpointing=...``,
``data.max_frames=...``); the config is composed from ``conf/`` exactly as ``train.py`` composes it.
"""

from __future__ import annotations

import argparse
import sys

from songbloom.plan.settings import ATTENTION_KERNELS


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog or "songbloom-plan", description=__doc__.split("\n\n")[0])
    p.add_argument("overrides", nargs="*", help="train.py overrides, e.g. experiment=full_finetune lora=all")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument(
        "--attention",
        choices=ATTENTION_KERNELS,
        default="flash",
        help="attention kernel on the GPU (flash/efficient keep O(length) state; math keeps T^2)",
    )
    p.add_argument("--seconds", type=float, default=None, help="crop length in seconds (default: data.max_frames)")
    p.add_argument("--config-dir", default=None, help="primary config directory (default: the package's conf/)")
    return p


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(sys.argv[1:] if argv is None else argv)
    from songbloom.config.run import RunConfigError, parse_run_config, stored_run_config
    from songbloom.plan.compose import compose_run_config
    from songbloom.plan.estimate import estimate
    from songbloom.plan.report import as_json, table

    c = compose_run_config(args.overrides, args.config_dir)
    try:
        rc = parse_run_config(c)
    except RunConfigError as e:  # train.py would refuse it; the memory it would need is still worth knowing
        print(f"note: train.py would refuse this config: {e}", file=sys.stderr)
        rc = stored_run_config(c)
    plan = estimate(rc, attention=args.attention, seconds=args.seconds)
    print(as_json(plan) if args.json else table(plan))
    return 0
