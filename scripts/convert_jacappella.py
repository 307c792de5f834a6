#!/usr/bin/env python
"""Local jaCappella copy (<subset>/<song>/lead_vocal.wav + *_SVS.musicxml) -> JSONL manifest."""

from __future__ import annotations

import argparse
import logging

from songbloom.data.convert import convert_jacappella

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("root")
    ap.add_argument("--out", required=True)
    ap.add_argument("--audio-type", choices=["lead_vocal", "mixture", "mixture_stereo"], default="lead_vocal")
    ap.add_argument("--score-type", choices=["svs", "romaji", "default"], default="svs")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    path, problems = convert_jacappella(args.root, args.out, args.audio_type, args.score_type)
    for p in problems:
        logging.warning("skipped: %s", p)
    logging.info("wrote %s (%d songs skipped)", path, len(problems))
