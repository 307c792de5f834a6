"""Train or fine-tune SongBloom: ``python train.py [experiment=<name>] [overrides...]`` (see docs/training.md).

Same as the ``songbloom-train`` command (``songbloom.cli.train``), with the same ``conf/``.
"""

import sys

from songbloom.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
