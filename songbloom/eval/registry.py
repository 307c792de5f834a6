"""A small name -> class registry so configs and the CLI can pick metrics by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar, runtime_checkable


@runtime_checkable
class Metric(Protocol):
    """Accumulate with ``update(...)`` (any number of calls), read with ``compute()``, start over with ``reset()``.

    ``compute()`` returns flat ``{name: float}`` so results go straight to a logger or a JSON report.
    """

    name: str

    def update(self, *args: Any, **kwargs: Any) -> None: ...

    def compute(self) -> dict[str, float]: ...

    def reset(self) -> None: ...


_REGISTRY: dict[str, type] = {}
T = TypeVar("T", bound=type)


def register_metric(name: str) -> Callable[[T], T]:
    """Class decorator: make ``build_metric(name, ...)`` construct this class."""

    def wrap(cls: T) -> T:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"metric name {name!r} is already registered to {_REGISTRY[name].__name__}")
        _REGISTRY[name] = cls
        return cls

    return wrap


def available_metrics() -> list[str]:
    return sorted(_REGISTRY)


def build_metric(name: str, **kwargs: Any) -> Metric:
    """Construct a registered metric; an unknown name lists the known ones."""
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; registered metrics: {', '.join(available_metrics())}") from None
    return cls(**kwargs)
