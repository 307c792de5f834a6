#!/usr/bin/env python
"""Write a synthetic song dataset (numpy-made structured songs with timed lyrics) under data/."""

from __future__ import annotations

import argparse
import logging

from songbloom.data.synthetic import make_synthetic_dataset


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="data/synthetic", help="output folder (audio/ and manifest.jsonl)")
    ap.add_argument("--num-songs", type=int, default=8)
    ap.add_argument("--min-seconds", type=float, default=8.0)
    ap.add_argument("--max-seconds", type=float, default=16.0)
    ap.add_argument("--seconds-per-tag", type=float, default=1.0, help="1 for the 150 s models, 5 for the 240 s one")
    ap.add_argument(
        "--lyric-style",
        choices=["phoneme", "text"],
        default="phoneme",
        help="phoneme: lyrics already in vocabulary symbols; text: English words for the G2P front end",
    )
    ap.add_argument("--prompt-files", action="store_true", help="also write a 10 s prompt file per song")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    path = make_synthetic_dataset(
        args.out,
        args.num_songs,
        args.min_seconds,
        args.max_seconds,
        seconds_per_tag=args.seconds_per_tag,
        lyric_style=args.lyric_style,
        seed=args.seed,
        with_prompt_files=args.prompt_files,
    )
    logging.info("wrote %s", path)


if __name__ == "__main__":
    main()
