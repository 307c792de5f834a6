#!/usr/bin/env python
"""Songs without lyrics -> manifest with timed sections transcribed by a local Whisper model (no download)."""

from __future__ import annotations

import argparse
import logging

from songbloom.data.asr import WhisperTranscriber, convert_asr

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("folder")
    ap.add_argument("--model", required=True, help="local folder of a Whisper model (transformers format)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--language", choices=["zh", "en", "ja"])
    ap.add_argument("--license")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    path, problems = convert_asr(
        args.folder, args.out, WhisperTranscriber.from_pretrained(args.model), args.language, license=args.license
    )
    logging.info("wrote %s (%d files skipped)", path, len(problems))
