"""Generate songs with SongBloom: ``python infer.py --input-jsonl example/test.jsonl [--ckpt-path ...]``.

See ``docs/inference.md`` and ``python infer.py --help``.
"""

import sys

from songbloom.utils.mps_env import set_mps_fallback_env_from_argv

set_mps_fallback_env_from_argv(sys.argv[1:])  # before torch is imported: it reads the variable once

from songbloom.inference.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
