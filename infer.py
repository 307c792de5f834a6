"""Generate songs with SongBloom: ``python infer.py --input-jsonl example/test.jsonl [--ckpt-path ...]``.

See ``docs/inference.md`` and ``python infer.py --help``.
"""

import sys

from songbloom.inference.cli import main

if __name__ == "__main__":
    sys.exit(main())
