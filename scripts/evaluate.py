#!/usr/bin/env python
"""Objective evaluation report: fine-tuned vs base on the same prompts and seeds (see docs/evaluation.md).

Same as the ``songbloom-evaluate`` command (``songbloom.cli.evaluate``).
"""

from songbloom.cli.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())
