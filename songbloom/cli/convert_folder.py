"""Folder of audio files with <stem>.lrc or <stem>.txt lyrics beside them -> JSONL manifest.

The ``songbloom-convert-folder`` command (also ``scripts/convert_folder.py``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from songbloom.cli.batch_summary import add_strict_flag, finish_batch, manifest_rows


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description="Folder of audio files with <stem>.lrc or <stem>.txt lyrics beside them -> JSONL manifest."
    )
    ap.add_argument("folder")
    ap.add_argument("--out", required=True, help="manifest to write")
    ap.add_argument("--language", choices=["zh", "en", "ja"])
    ap.add_argument("--license")
    ap.add_argument("--gap-seconds", type=float, default=4.0, help="silence between LRC lines that becomes [inst]")
    add_strict_flag(ap)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from songbloom.data.convert import convert_folder

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if not Path(args.folder).is_dir():
        raise SystemExit(f"error: {args.folder}: no such folder; give the folder holding the audio and lyrics files")
    path, problems = convert_folder(args.folder, args.out, args.language, args.license, args.gap_seconds)
    return finish_batch(manifest_rows(path), problems, strict=args.strict, what="songs", where=path)
