"""The ``songbloom-plan`` command: ``songbloom.plan.cli`` (also ``python -m songbloom.plan``).

Its code stays in ``songbloom.plan.cli`` because ``songbloom/plan/__main__.py`` must run it and may not import
``songbloom.cli`` (a layer above it); this module gives the console script the same ``build_parser``/``main``.
"""

from songbloom.plan.cli import build_parser, main

__all__ = ["build_parser", "main"]
