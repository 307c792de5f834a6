"""Songs without lyrics -> manifest with timed sections transcribed by a local Whisper model (no download).

The ``songbloom-convert-asr`` command (also ``scripts/convert_asr.py``).
"""

from __future__ import annotations

import argparse
import logging

from songbloom.cli.batch_summary import add_strict_flag, finish_batch, manifest_rows


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description="Songs without lyrics -> manifest with timed sections transcribed by a local Whisper model "
        "(no download)."
    )
    ap.add_argument("folder")
    ap.add_argument("--model", required=True, help="local folder of a Whisper model (transformers format)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--language", choices=["zh", "en", "ja"])
    ap.add_argument("--license")
    add_strict_flag(ap)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from songbloom.data.asr import WhisperTranscriber, convert_asr

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    path, problems = convert_asr(
        args.folder, args.out, WhisperTranscriber.from_pretrained(args.model), args.language, license=args.license
    )
    return finish_batch(manifest_rows(path), problems, strict=args.strict, what="songs", where=path)
