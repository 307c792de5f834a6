"""Local Tohoku Kiritan singing DB (wav/ + musicxml/) -> JSONL manifest.

The ``songbloom-convert-kiritan`` command (also ``scripts/convert_kiritan.py``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from songbloom.cli.batch_summary import add_strict_flag, finish_batch, manifest_rows


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="Local Tohoku Kiritan singing DB (wav/ + musicxml/) -> JSONL manifest.")
    ap.add_argument("root")
    ap.add_argument("--out", required=True)
    add_strict_flag(ap)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from songbloom.data.convert import convert_kiritan

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if not Path(args.root).is_dir():
        raise SystemExit(f"error: {args.root}: no such folder; give the Kiritan root (wav/ and musicxml/ inside)")
    path, problems = convert_kiritan(args.root, args.out)
    return finish_batch(manifest_rows(path), problems, strict=args.strict, what="songs", where=path)
