#!/usr/bin/env python
"""Folder of audio files with <stem>.lrc or <stem>.txt lyrics beside them -> JSONL manifest.

Same as the ``songbloom-convert-folder`` command (``songbloom.cli.convert_folder``).
"""

from songbloom.cli.convert_folder import main

if __name__ == "__main__":
    raise SystemExit(main())
