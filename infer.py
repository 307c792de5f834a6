"""Generate songs with SongBloom: ``python infer.py --input-jsonl example/test.jsonl [--ckpt-path ...]``.

Same as the ``songbloom-infer`` command (``songbloom.cli.infer``); see ``docs/inference.md``.
"""

import sys

from songbloom.cli.infer import main

if __name__ == "__main__":
    sys.exit(main())
