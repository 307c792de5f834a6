"""The ``songbloom-sketch`` command: ``songbloom.sketch.cli`` (also ``python -m songbloom.sketch``).

Its code stays in ``songbloom.sketch.cli`` because ``songbloom/sketch/__main__.py`` must run it and may not import
``songbloom.cli`` (a layer above it); this module gives the console script the same ``build_parser``/``main``.
"""

from songbloom.sketch.cli import build_parser, main

__all__ = ["build_parser", "main"]
