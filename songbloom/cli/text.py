"""The ``songbloom-text`` command: ``songbloom.text.cli`` (also ``python -m songbloom.text``).

Its code stays in ``songbloom.text.cli`` because ``songbloom/text/__main__.py`` must run it and may not import
``songbloom.cli`` (a layer above it); this module gives the console script the same ``build_parser``/``main``.
"""

from songbloom.text.cli import build_parser, main

__all__ = ["build_parser", "main"]
