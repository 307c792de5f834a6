"""The run config ``train.py`` would compose from ``conf/`` and the same overrides (Hydra's compose API)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def compose_run_config(overrides: list[str], config_dir: str | Path | None = None) -> dict[str, Any]:
    """The resolved run config (a plain dict, ``hydra`` node dropped) for ``train.py <overrides>``."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf, open_dict

    with initialize_config_dir(version_base="1.3", config_dir=str(config_dir or CONF_DIR), job_name="plan"):
        cfg = compose(config_name="train", overrides=list(overrides), return_hydra_config=True)
    choices = cfg.hydra.runtime.choices
    with open_dict(cfg):
        cfg.experiment_name = choices.get("experiment")  # train.yaml reads it from ${hydra:...}
        del cfg["hydra"]
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # type: ignore[return-value]
