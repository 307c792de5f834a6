#!/usr/bin/env python
"""Objective evaluation report: fine-tuned vs base on the same prompts and seeds (see docs/evaluation.md)."""

import json
import logging

from songbloom.cli.evaluate import main

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    paths = main()
    print(json.dumps({k: str(v) for k, v in paths.items()}, indent=1))
