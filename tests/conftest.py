"""Shared test fixtures: the read-only reference data in ``../shared`` and GPU gating."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path:
    return Path(os.environ.get("SONGBLOOM_SHARED", REPO_ROOT.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ``../shared`` reference folder. Missing reference data is a hard failure, never a skip."""
    path = _shared_dir()
    if not (path / "fixtures").is_dir():
        pytest.fail(
            f"reference data not found at {path}: tests need ../shared beside the checkout "
            "(or SONGBLOOM_SHARED pointing at it)",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def tiny_a_dir(shared_dir: Path) -> Path:
    """Golden fixtures produced by the official code with the ``tiny_a`` config."""
    return shared_dir / "fixtures" / "upstream_tiny_a"


@pytest.fixture(scope="session")
def tiny_a_cases(tiny_a_dir: Path) -> dict:
    import torch

    return torch.load(tiny_a_dir / "cases.pt", weights_only=True)


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test, restored afterwards: tiny models are op-overhead bound, and extra threads
    only add spin-waits on a busy 2-core box. Directories of tiny-model tests request it from an autouse fixture."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except Exception:  # pragma: no cover - torch is a hard dependency
        has_gpu = False
    if has_gpu:
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _restore_root_logging():
    """Commands run in-process call ``logging.basicConfig``, which binds a handler to the sys.stderr of that
    moment (pytest's capture stream); put the root logger back so a later test never logs into a closed stream."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)
