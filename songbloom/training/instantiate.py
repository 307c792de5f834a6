"""The one instantiator of ``_target_`` blocks (data, logger, strategy, each named callback).

Only ``songbloom.training.run`` calls it, and only on the config composed from ``conf/`` and the command line.
Configs stored in run dirs, checkpoints and exports are data and never reach this module.

A block is ``{_target_: dotted.path, key: value, ...}``. The target is called with the block's keys and with
the *context* values it asks for by parameter name (``run_dir``, ``songbloom_config``, ``run_config``, ...):
those are the run's, never the config's. ``enabled: false`` skips a block. Values are passed as plain data
(nested ``_target_`` keys are not instantiated).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from songbloom.config.run import TARGET_KEY

CONTEXT_NAMES = (
    "run_dir", "ckpt_dir", "songbloom_config", "run_config", "trainer_config", "run_seed", "lora_enabled",
    "logger_enabled",
)  # fmt: skip
GENERIC_KEYS = ("enabled",)


def locate(path: str) -> Callable[..., Any]:
    from hydra.utils import get_object

    obj = get_object(path)
    if not callable(obj):
        raise TypeError(f"{path} is not callable")
    return obj


def config_keys(fn: Callable[..., Any]) -> list[str] | None:
    """The keys a target accepts from its config block (``None``: any key, it takes ``**kwargs``)."""
    declared = getattr(fn, "__config_keys__", None)
    if declared is not None:
        return list(declared)
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    named = (p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    return [n for n in named if n not in CONTEXT_NAMES]


def block_problems(name: str, block: Mapping[str, Any]) -> list[str]:
    """What is wrong with a ``_target_`` block, without calling it: the target must import, the keys must fit."""
    try:
        fn = locate(str(block[TARGET_KEY]))
    except Exception as e:  # noqa: BLE001 - any import problem is reported with the block's name
        return [f"{name}: {TARGET_KEY}={block[TARGET_KEY]!r} cannot be imported ({type(e).__name__}: {e})"]
    keys = config_keys(fn)
    given = [k for k in block if k != TARGET_KEY and k not in GENERIC_KEYS]
    out = []
    taken = sorted(set(given) & set(CONTEXT_NAMES))
    if taken:
        out.append(f"{name}: {taken} are set by the run, not by the config")
    if keys is not None:
        unknown = sorted(set(given) - set(keys) - set(CONTEXT_NAMES))
        if unknown:
            out.append(f"{name}: unknown key(s) {unknown}; valid keys: {sorted([*keys, *GENERIC_KEYS])}")
    return out


def instantiate(block: Mapping[str, Any] | None, **context: Any) -> Any:
    """Call the block's target with its keys and the context values its signature names; None when disabled."""
    if not block or block.get("enabled", True) is False:
        return None
    fn = locate(str(block[TARGET_KEY]))
    kwargs = {k: v for k, v in block.items() if k != TARGET_KEY and k not in GENERIC_KEYS}
    params = inspect.signature(fn).parameters
    kwargs.update({k: v for k, v in context.items() if k in params})
    return fn(**kwargs)


def instantiate_all(blocks: Mapping[str, Mapping[str, Any]], **context: Any) -> list[Any]:
    """Every block in order (the ``callbacks`` dict), leaving out disabled ones and targets that return None."""
    out = []
    for block in blocks.values():
        obj = instantiate(block, **context)
        if obj is not None:
            out.append(obj)
    return out
