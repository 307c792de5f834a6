"""JaCappella -> JSONL manifest with score-timed sections; scat-only songs skipped and reported.

The ``songbloom-convert-jacappella`` command (also ``scripts/convert_jacappella.py``).

    # fetch the gated corpus (accept its terms on Hugging Face first), then convert:
    python scripts/convert_jacappella.py data/jacappella --download --hf-token $HF_TOKEN --out data/ja.jsonl
    # or convert a local copy (<subset>/<song>/lead_vocal.wav + *_SVS.musicxml):
    python scripts/convert_jacappella.py data/jacappella --out data/ja.jsonl

The report (kept / scat-only / other problems, per song) is written to <out>.report.json.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from songbloom.cli.batch_summary import add_strict_flag, finish_batch, manifest_rows


def build_parser() -> argparse.ArgumentParser:
    from songbloom.data.jacappella import AUDIO_TYPES, SCORE_PATTERNS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", help="the local copy (downloaded into it with --download)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--audio-type", choices=AUDIO_TYPES, default="lead_vocal")
    ap.add_argument("--score-type", choices=sorted(SCORE_PATTERNS), default="svs")
    ap.add_argument("--download", action="store_true", help="fetch (or resume fetching) from Hugging Face first")
    ap.add_argument("--hf-token", default=os.environ.get("HF_TOKEN"), help="token (default: $HF_TOKEN or your login)")
    ap.add_argument("--subsets", nargs="*", default=(), help="only these genre subsets, e.g. jazz punk_rock")
    ap.add_argument("--min-lyric-fraction", type=float, default=0.3, help="scat rule: kana/kanji share below this")
    ap.add_argument("--gap-seconds", type=float, default=4.0, help="a silence this long splits sections")
    ap.add_argument("--score-offset", type=float, default=0.0, help="audio time of the score's first beat (s)")
    ap.add_argument("--no-timestamps", action="store_true", help="one untimed lyric string per song")
    add_strict_flag(ap)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from songbloom.data.convert import convert_jacappella
    from songbloom.data.jacappella import DownloadError, download_jacappella

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.download:
        try:
            download_jacappella(
                args.root,
                token=args.hf_token,
                audio_type=args.audio_type,
                score_type=args.score_type,
                subsets=args.subsets,
            )
        except DownloadError as e:
            logging.error("%s", e)
            return 1
    elif not Path(args.root).is_dir():
        logging.error("%s does not exist: pass --download to fetch the corpus there", args.root)
        return 1
    path, problems = convert_jacappella(
        args.root,
        args.out,
        args.audio_type,
        args.score_type,
        min_lyric_fraction=args.min_lyric_fraction,
        gap_seconds=args.gap_seconds,
        score_offset=args.score_offset,
        timestamps=not args.no_timestamps,
    )
    logging.info("report: %s.report.json", path)
    return finish_batch(manifest_rows(path), problems, strict=args.strict, what="songs", where=path)
