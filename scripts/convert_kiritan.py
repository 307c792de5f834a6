#!/usr/bin/env python
"""Local Tohoku Kiritan singing DB (wav/ + musicxml/) -> JSONL manifest."""

from __future__ import annotations

import argparse
import logging

from songbloom.data.convert import convert_kiritan

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("root")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    path, problems = convert_kiritan(args.root, args.out)
    for p in problems:
        logging.warning("skipped: %s", p)
    logging.info("wrote %s (%d songs skipped)", path, len(problems))
