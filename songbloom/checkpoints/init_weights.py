"""Where a run's generator weights come from: ``scratch``, a ``release`` or one of our ``export``s.

:func:`resolve_init` reads the files (strictly, weights-only) and hands back an
:class:`~songbloom.building.model.InitResult`; :func:`~songbloom.building.model.build_model` turns it into a
model without touching the disk.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from songbloom.building.model import (
    InitResult,
    finish_training_model,
    generator_config,
    preset_config,
    resolve_run_sketch_tables,
)
from songbloom.building.sketch_tables import RecoveredCodebook, SketchTablesLayout
from songbloom.checkpoints.release_files import resolve_release_files
from songbloom.checkpoints.release_state import load_release_state_dict, split_release_state_dict
from songbloom.checkpoints.safe_load import load_safetensors
from songbloom.checkpoints.strict import strict_load
from songbloom.config import SongBloomConfig
from songbloom.config.run import InitConfig, RunConfig, as_run_config
from songbloom.models.songbloom import SongBloomModel

logger = logging.getLogger(__name__)


def resolve_init(init_cfg: InitConfig, preset_cfg: SongBloomConfig) -> InitResult:
    """Read the weights named by the run's ``init`` block (not yet loaded into a model)."""
    source = init_cfg.source
    if source == "scratch":
        return InitResult(preset_cfg, None, source, "random init (release scheme)")
    if source == "release":
        name = str(init_cfg.release_name)
        files = resolve_release_files(name, init_cfg.release_dir, local_only=bool(init_cfg.local_only))
        cfg = files.load_config()
        sd, _vae, report = split_release_state_dict(load_release_state_dict(files.pt), require_vae=False)
        logger.info("release %s: %d generator tensors from %s (%s)", name, len(sd), files.pt, report)
        return InitResult(cfg, sd, source, f"release {name} ({files.pt})")
    if source == "export":
        path = Path(str(init_cfg.export_path))
        if not path.is_file():
            raise FileNotFoundError(f"init.export_path={path} does not exist (an exported generator .safetensors/.pt)")
        if path.suffix == ".safetensors":
            sd = load_safetensors(path)
        else:
            sd, _vae, _ = split_release_state_dict(load_release_state_dict(path), require_vae=False)
        cfg = preset_cfg
        config_json = path.with_name("config.json")
        if config_json.is_file():
            cfg = SongBloomConfig.from_dict(json.loads(config_json.read_text())["songbloom"])
        return InitResult(cfg, sd, source, f"export {path}")
    raise ValueError(f"init.source={source!r}: choose scratch, release or export")


@dataclass
class BuiltModel:
    """A run's model with its initial weights and training layout, and how its sketch tables were resolved."""

    model: SongBloomModel
    config: SongBloomConfig
    report: dict[str, list[str]]
    source: str
    sketch_tables: SketchTablesLayout | None  # None: no LoRA (every tensor trains)


def build_training_model(
    c: RunConfig | Mapping[str, Any],
    *,
    recovered: RecoveredCodebook | None = None,
    sketch_tables: SketchTablesLayout | None = None,
) -> BuiltModel:
    """The run's model with its initial weights (strict load), LoRA and trainable flags as the config declares.

    ``c``: the typed run config, or a stored one (a mapping read back from a checkpoint or run dir).
    ``recovered``: what the run's sketch codebook recorded about the tables it was recovered from (read by the
    caller; this layer does not read codebooks); the init weights' tables are hashed and compared with it.
    ``sketch_tables``: a layout already resolved (the one a checkpoint recorded), used as it is.
    """
    rc = as_run_config(c)
    init = resolve_init(rc.init, preset_config(rc))
    sb_cfg = generator_config(rc, init)
    model = SongBloomModel(sb_cfg.model)
    if init.state_dict is not None:
        strict_load(model, init.state_dict, what=init.description)
    if sketch_tables is None:
        sketch_tables = resolve_run_sketch_tables(rc, init.source, recovered, model)
    report = finish_training_model(model, rc, init, sketch_tables)
    return BuiltModel(model, sb_cfg, report, init.source, sketch_tables)


def build_model(
    c: RunConfig | Mapping[str, Any],
    *,
    recovered: RecoveredCodebook | None = None,
    sketch_tables: SketchTablesLayout | None = None,
) -> tuple[SongBloomModel, SongBloomConfig, dict[str, list[str]], str]:
    """:func:`build_training_model` as ``(model, config, trainable report, init source)``."""
    built = build_training_model(c, recovered=recovered, sketch_tables=sketch_tables)
    return built.model, built.config, built.report, built.source
