"""Set ``PYTORCH_ENABLE_MPS_FALLBACK`` before torch is imported (it is read once, at import); no torch here."""

from __future__ import annotations

import os
from collections.abc import MutableMapping, Sequence

FALLBACK_ENV = "PYTORCH_ENABLE_MPS_FALLBACK"


def wants_mps(argv: Sequence[str]) -> bool:
    """``--device mps``, ``--device=mps`` or a Hydra ``trainer.accelerator=mps`` / ``trainer=mps`` override."""
    args = list(argv)
    for i, a in enumerate(args):
        if a in ("--device=mps", "trainer=mps") or a.endswith("accelerator=mps") or a.startswith("--device=mps:"):
            return True
        if a == "--device" and i + 1 < len(args) and args[i + 1].split(":")[0] == "mps":
            return True
    return False


def set_mps_fallback_env_from_argv(argv: Sequence[str], env: MutableMapping[str, str] | None = None) -> bool:
    """For entry scripts: turn the per-op CPU fallback on when the command line asks for MPS (a user's own
    setting, even ``0``, is left alone). Returns whether it was set here."""
    env = os.environ if env is None else env
    if wants_mps(argv) and FALLBACK_ENV not in env:
        env[FALLBACK_ENV] = "1"
        return True
    return False
