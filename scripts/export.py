#!/usr/bin/env python
"""Export a checkpoint to the release layout, merged safetensors and a PEFT adapter; merge adapters at a strength.

python scripts/export.py export runs/<run>/checkpoints/last.ckpt --out exports/<run>
python scripts/export.py merge --adapter exports/<run>/peft_adapter --strength 0.5 --out exports/<run>_half
"""

from songbloom.cli.export import main

if __name__ == "__main__":
    raise SystemExit(main())
