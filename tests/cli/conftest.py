"""CLI tests run tiny models: one torch thread each (see tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread):
    """Tiny models in this directory run on one torch thread (restored afterwards)."""
