#!/usr/bin/env python
"""Objective evaluation report: fine-tuned vs base on the same prompts and seeds (see docs/evaluation.md)."""

import json
import logging
import sys
from pathlib import Path

# Use the checkout this script lives in, not whichever songbloom happens to be installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from songbloom.cli.evaluate import main  # noqa: E402

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    paths = main()
    print(json.dumps({k: str(v) for k, v in paths.items()}, indent=1))
