"""Folder of audio files with <stem>.lrc or <stem>.txt lyrics beside them -> JSONL manifest.

The ``songbloom-convert-folder`` command (also ``scripts/convert_folder.py``).
"""

from __future__ import annotations

import argparse
import logging


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description="Folder of audio files with <stem>.lrc or <stem>.txt lyrics beside them -> JSONL manifest."
    )
    ap.add_argument("folder")
    ap.add_argument("--out", required=True, help="manifest to write")
    ap.add_argument("--language", choices=["zh", "en", "ja"])
    ap.add_argument("--license")
    ap.add_argument("--gap-seconds", type=float, default=4.0, help="silence between LRC lines that becomes [inst]")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from songbloom.data.convert import convert_folder

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    path, problems = convert_folder(args.folder, args.out, args.language, args.license, args.gap_seconds)
    logging.info("wrote %s (%d files skipped)", path, len(problems))
    return 0
