#!/usr/bin/env python
"""jaCappella -> JSONL manifest with score-timed sections; scat-only songs skipped and reported.

Same as the ``songbloom-convert-jacappella`` command (``songbloom.cli.convert_jacappella``).
"""

from songbloom.cli.convert_jacappella import main

if __name__ == "__main__":
    raise SystemExit(main())
