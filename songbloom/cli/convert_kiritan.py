"""Local Tohoku Kiritan singing DB (wav/ + musicxml/) -> JSONL manifest.

The ``songbloom-convert-kiritan`` command (also ``scripts/convert_kiritan.py``).
"""

from __future__ import annotations

import argparse
import logging


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="Local Tohoku Kiritan singing DB (wav/ + musicxml/) -> JSONL manifest.")
    ap.add_argument("root")
    ap.add_argument("--out", required=True)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from songbloom.data.convert import convert_kiritan

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    path, problems = convert_kiritan(args.root, args.out)
    for p in problems:
        logging.warning("skipped: %s", p)
    logging.info("wrote %s (%d songs skipped)", path, len(problems))
    return 0
