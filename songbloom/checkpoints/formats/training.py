"""Rebuild the model of one of our Lightning training checkpoints, with every setting read from the checkpoint.

The checkpoint stores the run's resolved config (``songbloom_config``): model preset and overrides, init
source, LoRA settings and the fully-trained tensor sets. The model is rebuilt exactly as training built it
(same code path), then the stored weights go in. Adapter-only checkpoints (``training.save_frozen_base=false``)
lack the frozen base: it comes from the init source recorded in the config, or from an explicit ``base``.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from songbloom.building.lora import LoRASettings, merge_lora
from songbloom.building.model import apply_training_layout, layout_lora_settings
from songbloom.building.sketch_tables import SketchTablesLayout
from songbloom.checkpoints.base_record import base_problem, recorded_init
from songbloom.checkpoints.bundle import SongBloom
from songbloom.checkpoints.init_weights import build_model
from songbloom.checkpoints.keys import (
    BASE_RECORD_KEY,
    EMA_KEY,
    FROZEN_BASE_DROPPED_KEY,
    GLOBAL_STEP_KEY,
    SKETCH_TABLES_KEY,
    STATE_DICT_KEY,
    TRAINING_CONFIG_KEY,
)
from songbloom.checkpoints.metadata import checkpoint_licences, run_language
from songbloom.checkpoints.registry import CheckpointFormat, LoadOptions, load_checkpoint
from songbloom.checkpoints.safe_load import check_file_integrity
from songbloom.checkpoints.strict import (
    CheckpointMismatchError,
    format_mismatch_report,
    state_dict_mismatches,
    strict_load,
)
from songbloom.checkpoints.vae import no_vae_error, vae_for_run
from songbloom.config import SongBloomConfig
from songbloom.config.run import InitConfig, RunConfig, stored_run_config
from songbloom.models.songbloom import SongBloomModel
from songbloom.models.vae_factory import AnyVAE

logger = logging.getLogger(__name__)


@dataclass
class TrainedModel:
    """A training checkpoint rebuilt for inference and export."""

    path: Path
    config: SongBloomConfig
    model: SongBloomModel  # adapters injected but not merged; EMA weights in place when the run kept them
    run_config: dict[str, Any]
    lora: LoRASettings | None
    fully_trained: list[str]
    vae: AnyVAE | None
    base_description: str
    base_ref: str | None  # a path or release name another tool can load the frozen base from
    global_step: int = 0
    used_ema: bool = False
    licences: list[dict[str, Any]] = field(default_factory=list)
    sketch_tables: SketchTablesLayout | None = None  # as the run resolved it (None: no LoRA, or an older run)

    @property
    def has_adapters(self) -> bool:
        return self.lora is not None

    def merged_model(self) -> SongBloomModel:
        """A plain copy of the generator with the adapters folded in (the model itself stays unmerged)."""

        model = copy.deepcopy(self.model)
        return merge_lora(model) if self.has_adapters else model


def read_training_checkpoint(path: str | Path) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` plus a check that this is one of our training checkpoints."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training checkpoint {path} does not exist")
    check_file_integrity(path)  # the mmap path skips torch's own zip checks
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:
        raise ValueError(
            f"{path}: cannot be read as a training checkpoint with weights_only=True ({e}); "
            "is it a complete file written by our train.py?"
        ) from e
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get(STATE_DICT_KEY), dict):
        raise ValueError(f"{path}: not a Lightning checkpoint (no 'state_dict' mapping)")
    if not isinstance(ckpt.get(TRAINING_CONFIG_KEY), dict):
        raise ValueError(
            f"{path}: has no stored run config ('{TRAINING_CONFIG_KEY}'), so its model and LoRA settings are unknown; "
            "only checkpoints written by our train.py can be rebuilt this way"
        )
    return ckpt


def recorded_base_ref(init: InitConfig) -> str | None:
    """Where another tool can load the run's frozen base from: a path, or a release name."""
    if init.source == "release":
        if init.release_dir and Path(init.release_dir).is_dir():
            return str(Path(init.release_dir).resolve())
        return str(init.release_name)
    if init.source == "export" and init.export_path:
        return str(Path(init.export_path).resolve())
    return None


class BaseModelChangedError(ValueError):
    """The base an adapter-only checkpoint was trained on moved or changed since training."""


def with_recorded_base(ckpt: dict[str, Any], rc: RunConfig, path: Path, adapter_only: bool) -> RunConfig:
    """The run config with the base the checkpoint recorded at training start (resolved path, fingerprint checked).

    Checkpoints from before the record keep ``init`` as the run config states it (a relative ``release_dir`` is
    then read from the current directory). A moved or changed base stops an adapter-only checkpoint, whose
    adapters only fit that base; a full checkpoint holds every weight and falls back to the stated ``init``.
    """
    record = ckpt.get(BASE_RECORD_KEY)
    if not isinstance(record, dict):
        return rc
    problem = base_problem(record)
    if problem is None:
        return dataclasses.replace(rc, init=recorded_init(rc.init, record))
    if adapter_only:
        raise BaseModelChangedError(f"{path}: {problem}")
    logger.info("%s: %s; using init as the run config states it (this checkpoint holds every weight)", path, problem)
    return rc


def recorded_sketch_tables(ckpt: dict[str, Any], path: Path) -> SketchTablesLayout | None:
    """The sketch tables layout the run recorded (None for checkpoints from before it was recorded)."""
    record = ckpt.get(SKETCH_TABLES_KEY)
    if record is None:
        return None
    if not isinstance(record, dict):
        raise ValueError(f"{path}: '{SKETCH_TABLES_KEY}' is not a mapping ({type(record).__name__})")
    try:
        return SketchTablesLayout.from_dict(record)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: unreadable '{SKETCH_TABLES_KEY}' record ({e}); was it written by a newer "
                         "songbloom? Upgrade songbloom") from e


def _build_with_base(rc: RunConfig, base: str | Path, sketch_tables: SketchTablesLayout | None = None):
    """The run's model on top of the generator (and VAE) of any checkpoint ``load_checkpoint`` reads."""
    bundle = load_checkpoint(base)
    sb_cfg = copy.deepcopy(bundle.config)
    if rc.model.overrides:
        sb_cfg.model = dataclasses.replace(sb_cfg.model, **dict(rc.model.overrides))
    model = SongBloomModel(sb_cfg.model)
    strict_load(model, bundle.model.float().state_dict(), what=f"base generator from {base}")
    report = apply_training_layout(model, rc, rc.init.source, sketch_tables)
    return model, sb_cfg, report, bundle.vae


def _load_weights(model: SongBloomModel, state: dict[str, torch.Tensor], path: Path, adapter_only: bool) -> None:
    sd = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    if not adapter_only:
        strict_load(model, sd, what=f"generator from {path}")
        return
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in sd.items()}
    missing, unexpected, mismatched = state_dict_mismatches(expected, got)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    missing_trainable = sorted(set(missing) & trainable)
    if unexpected or mismatched or missing_trainable:
        raise CheckpointMismatchError(
            format_mismatch_report(f"generator from {path}", missing_trainable, unexpected, mismatched, expected, got),
            missing=missing_trainable,
            unexpected=unexpected,
            mismatched=mismatched,
        )
    model.load_state_dict(sd, strict=False)
    logger.info("loaded %d trained tensors from %s over the frozen base (%d kept)", len(sd), path, len(missing))


def load_training_checkpoint(path: str | Path, *, base: str | Path | None = None, use_ema: bool = True) -> TrainedModel:
    """Rebuild the generator of a training checkpoint (LoRA or not), ready for inference and export.

    ``base``: any checkpoint :func:`~songbloom.checkpoints.registry.load_checkpoint` reads, used for the
    frozen base weights (and the VAE) instead of the init source the run recorded.
    """
    path = Path(path)
    ckpt = read_training_checkpoint(path)
    c = copy.deepcopy(ckpt[TRAINING_CONFIG_KEY])
    rc = stored_run_config(c)  # data: nothing it names is imported or called
    adapter_only = FROZEN_BASE_DROPPED_KEY in ckpt
    sketch_tables = recorded_sketch_tables(ckpt, path)
    vae = None
    if base is not None:
        model, sb_cfg, report, vae = _build_with_base(rc, base, sketch_tables)
        base_desc, base_ref = f"base {base}", str(Path(base).resolve()) if Path(base).exists() else str(base)
    else:
        rc = with_recorded_base(ckpt, rc, path, adapter_only)
        try:
            model, sb_cfg, report, source = build_model(rc, sketch_tables=sketch_tables)
        except (OSError, ValueError) as e:
            what = "the frozen base (this checkpoint holds only the trained tensors)" if adapter_only else "the model"
            raise type(e)(
                f"{path}: cannot rebuild {what} from the init source the run recorded "
                f"(init={c.get('init')}): {e}\n"
                "Pass the base model explicitly (--base-ckpt / base=<release dir or .pt>)."
            ) from e
        base_desc, base_ref = f"init {source}", recorded_base_ref(rc.init)
    model.set_gradient_checkpointing("none")
    _load_weights(model, ckpt[STATE_DICT_KEY], path, adapter_only)
    used_ema = False
    ema = ckpt.get(EMA_KEY)
    if use_ema and isinstance(ema, dict) and int(ema.get("num_updates", 0)) > 0:
        params = dict(model.named_parameters())
        shadow = ema["shadow"]
        unknown = sorted(set(shadow) - set(params))
        if unknown:
            raise ValueError(f"{path}: EMA weights for tensors the model does not have: {unknown[:10]}")
        with torch.no_grad():
            for n, t in shadow.items():
                params[n].copy_(t.to(params[n].dtype))
        used_ema = True
        logger.info("%s: EMA weights of %d tensors (after %d updates)", path, len(shadow), ema["num_updates"])
    for p in model.parameters():
        p.requires_grad_(False)
    if vae is None:
        vae = vae_for_run(rc, sb_cfg)
    lora = layout_lora_settings(rc, sketch_tables)
    return TrainedModel(
        path=path,
        config=sb_cfg,
        model=model.eval(),
        run_config=c,
        lora=lora if lora.enabled else None,
        fully_trained=list(report.get("fully_trained", [])) if lora.enabled else [],
        vae=vae,
        base_description=base_desc,
        base_ref=base_ref,
        global_step=int(ckpt.get(GLOBAL_STEP_KEY, 0)),
        used_ema=used_ema,
        licences=checkpoint_licences(ckpt),
        sketch_tables=sketch_tables,
    )


# ------------------------------------------------------------------------------------------------ the format
def is_training_checkpoint(path: str | Path) -> bool:
    """A torch zip whose pickle (not its tensors) mentions our stored run config (no tensor reads)."""
    path = Path(path)
    if not path.is_file() or not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            pkl = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if len(pkl) != 1 or zf.getinfo(pkl[0]).file_size > 256 * 2**20:
                return False
            return TRAINING_CONFIG_KEY.encode() in zf.read(pkl[0])
    except (OSError, zipfile.BadZipFile):
        return False


def _detect(path: Path) -> bool:
    return path.suffix == ".ckpt" and is_training_checkpoint(path)


def _load(path: Path, opts: LoadOptions) -> SongBloom:
    trained = load_training_checkpoint(path, base=opts.base_path)
    if trained.vae is None:
        raise no_vae_error(path)
    cfg = trained.config
    # The adapters stay unmerged: outputs are exactly those of the training module.
    language = run_language(trained.run_config)
    return SongBloom.loaded_from(
        path, cfg, trained.model, trained.vae, opts.device, opts.dtype, training_language=language
    )


FORMAT = CheckpointFormat(
    "lightning_ckpt",
    "a training .ckpt written by our train.py (settings from its stored run config; --base-ckpt for the base)",
    _detect,
    _load,
)
