"""Rank-aware logging: one line per message in multi-process runs, with the rank that wrote it.

Under DDP/FSDP every rank runs the same code, so a plain ``logger.info`` prints the same line N times with no
hint of where it came from. :class:`RankedLogger` prefixes ``[rank r/w]`` and can restrict a message to rank 0.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from typing import Any

from songbloom.utils.ranks import global_rank, world_size


class RankedLogger(logging.LoggerAdapter):
    """A ``logging`` adapter that tags messages with the rank and can keep them to one rank.

    ``RankedLogger(__name__, rank_zero_only=True)`` logs on rank 0 only (settings, summaries);
    ``log.info(..., rank=1)`` logs on rank 1 only; the default logs on every rank with a ``[rank r/w]`` prefix.
    """

    def __init__(self, name: str = __name__, rank_zero_only: bool = False, extra: Mapping[str, Any] | None = None):
        super().__init__(logging.getLogger(name), extra or {})
        self.rank_zero_only = rank_zero_only

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        return f"[rank {global_rank()}/{world_size()}] {msg}", kwargs

    def log(self, level: int, msg: Any, *args: Any, rank: int | None = None, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        current = global_rank()
        wanted = 0 if (rank is None and self.rank_zero_only) else rank
        if wanted is not None and current != wanted:
            return
        msg, kwargs = self.process(msg, kwargs)
        self.logger.log(level, msg, *args, **kwargs)


def route_library_logs_to_root(names: tuple[str, ...] = ("lightning", "lightning.pytorch", "lightning.fabric")) -> None:
    """Send these libraries' records through the root logger only (once to the console, and into ``train.log``).

    Lightning installs its own stderr handlers and stops propagation, so each of its messages otherwise appears
    twice on the console and never in the run's log file.
    """
    for name in names:
        lib = logging.getLogger(name)
        for handler in list(lib.handlers):
            lib.removeHandler(handler)
        lib.propagate = True
