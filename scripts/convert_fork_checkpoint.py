#!/usr/bin/env python
"""Convert a checkpoint of the ayutaz/SongBloom fork (train_japanese.py .ckpt) into our release-format directory.

Same as the ``songbloom-convert-fork-checkpoint`` command (``songbloom.cli.convert_fork_checkpoint``).
"""

from songbloom.cli.convert_fork_checkpoint import main

if __name__ == "__main__":
    raise SystemExit(main())
