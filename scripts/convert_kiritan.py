#!/usr/bin/env python
"""Local Tohoku Kiritan singing DB (wav/ + musicxml/) -> JSONL manifest.

Same as the ``songbloom-convert-kiritan`` command (``songbloom.cli.convert_kiritan``).
"""

from songbloom.cli.convert_kiritan import main

if __name__ == "__main__":
    raise SystemExit(main())
