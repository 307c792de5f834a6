#!/usr/bin/env python
"""Songs without lyrics -> manifest with timed sections transcribed by a local Whisper model (no download).

Same as the ``songbloom-convert-asr`` command (``songbloom.cli.convert_asr``).
"""

from songbloom.cli.convert_asr import main

if __name__ == "__main__":
    raise SystemExit(main())
