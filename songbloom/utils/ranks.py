"""This process's rank and world size: the one helper every part of the package asks.

``torch.distributed`` when a process group exists, else the launcher's environment (torchrun, srun, MPI), which
is all a data-loader worker or a process before ``init_process_group`` has. torch is imported lazily so that
the loader's forkserver preload stays light.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# Environment variables that carry the global rank before (or without) torch.distributed, in trust order.
_RANK_VARS = ("RANK", "SLURM_PROCID", "LOCAL_RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK")
_WORLD_VARS = ("WORLD_SIZE", "SLURM_NTASKS", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE")


def _first_int(names: tuple[str, ...], env: Mapping[str, str], default: int) -> int:
    for name in names:
        value = env.get(name)
        if value not in (None, ""):
            try:
                return int(value)
            except ValueError:
                continue
    return default


def global_rank(env: Mapping[str, str] | None = None) -> int:
    """This process's global rank: torch.distributed when initialised, else the launcher's environment."""
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank()
    except Exception:  # torch missing or half-initialised: fall back to the environment
        pass
    return _first_int(_RANK_VARS, os.environ if env is None else env, 0)


def world_size(env: Mapping[str, str] | None = None) -> int:
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_world_size()
    except Exception:
        pass
    return _first_int(_WORLD_VARS, os.environ if env is None else env, 1)


def rank_and_world(env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``(global_rank, world_size)`` in one call."""
    return global_rank(env), world_size(env)
