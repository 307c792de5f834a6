"""The end-of-training export of a run: merged safetensors, the release layout and the PEFT adapter directory.

What is written is chosen by the run config's ``export`` keys (see ``conf/train.yaml``). A format that
cannot be made for this run (no known VAE for the release layout) is skipped with a warning, never fatal:
the training itself already succeeded.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
from pathlib import Path
from typing import Any

import torch

from songbloom.building.lora import adapter_state_dict, merge_lora
from songbloom.building.model import layout_lora_settings
from songbloom.building.sketch_tables import SketchTablesLayout
from songbloom.checkpoints.formats.merged import export_merged, save_safetensors
from songbloom.checkpoints.formats.peft_adapter import save_peft_adapter
from songbloom.checkpoints.formats.release import export_release
from songbloom.checkpoints.formats.training import recorded_base_ref
from songbloom.checkpoints.keys import ADAPTER_FILE, CONFIG_FILE
from songbloom.checkpoints.metadata import TRAINING_LANGUAGE_KEY, export_metadata, run_language
from songbloom.checkpoints.vae import vae_for_run
from songbloom.config import SongBloomConfig
from songbloom.config.run import RunConfig
from songbloom.models.songbloom import SongBloomModel
from songbloom.models.vae_factory import AnyVAE
from songbloom.training.lit_module import SongBloomLitModule
from songbloom.utils.atomic import atomic_write_text

logger = logging.getLogger(__name__)


def trained_copy(lit: SongBloomLitModule) -> SongBloomModel:
    """A CPU copy of the training module's generator with the EMA weights when the run kept them (unmerged).

    Called when training is over: a GPU model is moved to the CPU first, so the copy never doubles GPU memory.
    """
    ema = lit.ema
    if next(lit.model.parameters()).device.type != "cpu":
        lit.model.cpu()
        if ema is not None:
            ema.to(torch.device("cpu"))
    ctx = ema.swapped_in(lit.model) if ema is not None and ema.num_updates > 0 else contextlib.nullcontext()
    with ctx:
        return copy.deepcopy(lit.model).eval()


def export_generator(
    lit: SongBloomLitModule,
    sb_cfg: SongBloomConfig,
    out_dir: Path,
    *,
    merge: bool = True,
    extra: dict | None = None,
    vae: AnyVAE | None = None,
    licences: list[dict[str, Any]] | None = None,
    trained: SongBloomModel | None = None,
) -> dict[str, Path]:
    """End of training: the generator (EMA weights when enabled, LoRA merged) + config, and the raw adapters.

    ``trained``: an already made :func:`trained_copy`; with ``merge`` its adapters are folded in place, so the
    caller can reuse it as the merged model afterwards.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    model = trained if trained is not None else trained_copy(lit)
    adapters = adapter_state_dict(model)
    if adapters:
        paths["adapter"] = save_safetensors(out_dir / ADAPTER_FILE, adapters, {"format": "pt"})
    meta = export_metadata("merged", source="training run", licences=licences, **(extra or {}))
    if adapters and merge:
        model = merge_lora(model)
    if not adapters or merge:
        paths.update(export_merged(model, sb_cfg, out_dir, vae=vae, metadata=meta))
    else:
        paths["config"] = atomic_write_text(
            out_dir / CONFIG_FILE, json.dumps({"songbloom": sb_cfg.to_dict(), **meta}, indent=1, default=str)
        )
    return paths


def export_run(
    lit: SongBloomLitModule,
    sb_cfg: SongBloomConfig,
    run_dir: Path,
    run_config: RunConfig,
    *,
    extra: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``<run>/export`` (merged generator), ``<run>/export/release`` and ``<run>/export/peft_adapter``."""
    ex = run_config.export
    out = Path(run_dir) / "export"
    # every export records the training language (infer.py reads lyrics in it unless told otherwise)
    extra = {**(extra or {}), TRAINING_LANGUAGE_KEY: run_language(run_config)}
    licences = list(getattr(lit, "licences", None) or [])  # gathered by run.py at the start of the run
    vae = vae_for_run(run_config, sb_cfg)
    trained = trained_copy(lit)
    recorded = getattr(lit, "sketch_tables", None)  # adapters on the sketch classifier too with recovered_tables=lora
    lora = layout_lora_settings(run_config, SketchTablesLayout.from_dict(recorded) if recorded else None)
    paths: dict[str, Path] = {}
    if lora.enabled and ex.peft_adapter:
        base_ref = recorded_base_ref(run_config.init)
        try:
            adapter = save_peft_adapter(
                trained,
                lora,
                list(lit.trainable_report.get("fully_trained", [])),
                out / "peft_adapter",
                config=sb_cfg,
                base_model_name_or_path=base_ref,
                metadata=export_metadata("peft_adapter", source="training run", licences=licences, **extra),
            )
            paths["peft_adapter"] = adapter["adapter_config"].parent
        except ValueError as e:
            logger.warning("no PEFT adapter directory for this run: %s", e)
    merge = bool(ex.merge_lora)
    paths.update(
        export_generator(lit, sb_cfg, out, merge=merge, extra=extra, vae=vae, licences=licences, trained=trained)
    )
    merged = trained  # folded in place by export_generator when merge (one CPU copy of the model, not two)
    if ex.release_format:
        if vae is None:
            logger.warning(
                "release-format export skipped: no VAE is known for this run (neither the init release's VAE files "
                "nor the demo VAE); run scripts/export.py on the checkpoint with --base-ckpt <release dir>"
            )
        elif lora.enabled and not merge:
            logger.warning("release-format export skipped: export.merge_lora=false (the release layout is merged)")
        else:
            name = ex.name or Path(run_dir).name
            rel = export_release(
                merged,
                sb_cfg,
                vae,
                out / "release",
                name=str(name),
                metadata=export_metadata("release", source="training run", licences=licences, **(extra or {})),
            )
            paths["release_dir"] = rel["release_pt"].parent
    return paths
