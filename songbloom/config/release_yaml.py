"""Read and write release YAMLs (``songbloom_full_150s.yaml`` and friends) without the official resolvers.

The official ``infer.py`` registers five global OmegaConf resolvers (``eval``, ``concat``, ``get_fname``,
``load_yaml``, ``dynamic_path``), the first of which runs Python ``eval``. We must read the same files, but we
must not run code from a config, and a library must not change global OmegaConf state that other code (Hydra,
user scripts, the official package itself) relies on. So before resolving, every ``${<name>:`` of those five
is renamed to ``${songbloom.<name>:`` and only those private names are registered. The directory that
``???`` stands for is passed through a context variable, so concurrent loads of different YAMLs do not mix.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from songbloom.config.safe_eval import safe_arithmetic_eval

logger = logging.getLogger(__name__)

RELEASE_RESOLVERS = ("eval", "concat", "get_fname", "load_yaml", "dynamic_path")
PRIVATE_RESOLVER_PREFIX = "songbloom."
MODEL_DIR_PLACEHOLDER = "???"

_INTERPOLATION_NAME = re.compile(r"(?<!\\)\$\{\s*(" + "|".join(RELEASE_RESOLVERS) + r")\s*:")
# (model directory, {file name relative to ???: actual path}) of the load in progress.
_model_dir: contextvars.ContextVar[tuple[str, dict[str, str]] | None] = contextvars.ContextVar(
    "songbloom_release_model_dir", default=None
)


# ---------------------------------------------------------------------------------------------- resolvers
def _dynamic_path(path: str) -> str:
    state = _model_dir.get()
    if state is None:
        raise RuntimeError("songbloom.dynamic_path used outside load_release_yaml (no model directory set)")
    model_dir, overrides = state
    path = str(path)
    prefix = MODEL_DIR_PLACEHOLDER + "/"
    if path.startswith(prefix) and path[len(prefix) :] in overrides:
        return overrides[path[len(prefix) :]]
    return path.replace(MODEL_DIR_PLACEHOLDER, model_dir)


def _load_yaml(path: str) -> Any:
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"load_yaml: {path} does not exist (release YAMLs expect vocab_g2p.yaml next to the model YAML)"
        )
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def _concat(*lists: Any) -> list[Any]:
    out: list[Any] = []
    for item in lists:
        if isinstance(item, str) or not isinstance(item, Iterable):
            raise ValueError(f"concat: every argument must be a list, got {item!r}")
        out.extend(item)
    return out


def _get_fname(path: str) -> str:
    return os.path.splitext(os.path.basename(str(path)))[0]


_RESOLVERS = {
    "eval": safe_arithmetic_eval,
    "concat": _concat,
    "get_fname": _get_fname,
    "load_yaml": _load_yaml,
    "dynamic_path": _dynamic_path,
}


def _register_private_resolvers() -> None:
    # replace=True only ever touches our own ``songbloom.*`` names; the global ``eval`` & co. stay as they are.
    for name, fn in _RESOLVERS.items():
        OmegaConf.register_new_resolver(PRIVATE_RESOLVER_PREFIX + name, fn, replace=True)


def _rename_interpolations(node: Any) -> Any:
    if isinstance(node, str):
        return _INTERPOLATION_NAME.sub(lambda m: "${" + PRIVATE_RESOLVER_PREFIX + m.group(1) + ":", node)
    if isinstance(node, Mapping):
        return {k: _rename_interpolations(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_rename_interpolations(v) for v in node]
    return node


# ---------------------------------------------------------------------------------------------- loading
def load_release_yaml(
    path: str | Path,
    model_dir: str | Path | None = None,
    file_overrides: Mapping[str, str | Path] | None = None,
) -> dict[str, Any]:
    """Load a release YAML into a plain, fully resolved dict.

    ``${dynamic_path:???/x}`` becomes ``<model_dir>/x`` with ``model_dir`` defaulting to the YAML's own
    directory (absolute). Files named that way need not exist, except those read by ``${load_yaml:...}``
    (the lyric vocabulary). ``${eval:...}`` accepts arithmetic only (see :mod:`songbloom.config.safe_eval`).
    ``file_overrides`` maps a name ``x`` of ``???/x`` to where that file really is (files of one release
    can sit in different Hugging Face cache snapshots).

    Raises:
        FileNotFoundError: the YAML itself is missing.
        ValueError: the YAML is not a mapping, or an interpolation cannot be resolved (message names the
            file and the key).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"release YAML {path} does not exist")
    base = Path(model_dir) if model_dir is not None else path.parent
    try:
        raw = OmegaConf.load(path)
    except Exception as e:  # yaml.YAMLError and OmegaConf's own errors; both carry line information
        raise ValueError(f"{path}: not a readable YAML file: {e}") from e
    if not OmegaConf.is_dict(raw):
        raise ValueError(f"{path}: a release YAML must be a mapping at the top level, got {type(raw).__name__}")
    renamed = OmegaConf.create(_rename_interpolations(OmegaConf.to_container(raw, resolve=False)))
    _register_private_resolvers()
    overrides = {str(k): str(Path(v).resolve()) for k, v in (file_overrides or {}).items()}
    token = _model_dir.set((str(base.resolve()), overrides))
    try:
        resolved = OmegaConf.to_container(renamed, resolve=True)
    except OmegaConfBaseException as e:
        raise ValueError(f"{path}: cannot resolve the release config: {e}") from e
    finally:
        _model_dir.reset(token)
    assert isinstance(resolved, dict)
    return resolved
