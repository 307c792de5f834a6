"""The end-of-training export of a run: merged safetensors, the release layout and the PEFT adapter directory.

What is written is chosen by the run config's ``export`` keys (see ``conf/train.yaml``). A format that
cannot be made for this run (no known VAE for the release layout) is skipped with a warning, never fatal:
the training itself already succeeded.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from songbloom.config import SongBloomConfig
from songbloom.export.merged import export_generator, trained_copy
from songbloom.export.metadata import export_metadata

if TYPE_CHECKING:
    from songbloom.training.lit_module import SongBloomLitModule

logger = logging.getLogger(__name__)


def export_run(
    lit: SongBloomLitModule,
    sb_cfg: SongBloomConfig,
    run_dir: Path,
    run_config: dict[str, Any],
    *,
    extra: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``<run>/export`` (merged generator), ``<run>/export/release`` and ``<run>/export/peft_adapter``."""
    from songbloom.export.release import export_release
    from songbloom.export.training_checkpoint import _base_ref
    from songbloom.export.vae_source import vae_for_run
    from songbloom.training.lora import LoRASettings

    ex = run_config.get("export") or {}
    out = Path(run_dir) / "export"
    licences = list(getattr(lit, "licences", None) or [])  # gathered by run.py at the start of the run
    vae = vae_for_run(run_config, sb_cfg)
    trained = trained_copy(lit)
    lora = LoRASettings.from_config(run_config.get("lora") or {"preset": "none"})
    paths: dict[str, Path] = {}
    if lora.enabled and ex.get("peft_adapter", True):
        from songbloom.export.peft_adapter import save_peft_adapter

        base_ref = _base_ref(run_config.get("init") or {})
        try:
            adapter = save_peft_adapter(
                trained,
                lora,
                list(lit.trainable_report.get("fully_trained", [])),
                out / "peft_adapter",
                config=sb_cfg,
                base_model_name_or_path=base_ref,
                metadata=export_metadata("peft_adapter", source="training run", licences=licences),
            )
            paths["peft_adapter"] = adapter["adapter_config"].parent
        except ValueError as e:
            logger.warning("no PEFT adapter directory for this run: %s", e)
    merge = bool(ex.get("merge_lora", True))
    paths.update(
        export_generator(lit, sb_cfg, out, merge=merge, extra=extra, vae=vae, licences=licences, trained=trained)
    )
    merged = trained  # folded in place by export_generator when merge (one CPU copy of the model, not two)
    if ex.get("release_format", True):
        if vae is None:
            logger.warning(
                "release-format export skipped: no VAE is known for this run (neither the init release's VAE files "
                "nor the demo VAE); run scripts/export.py on the checkpoint with --base-ckpt <release dir>"
            )
        elif lora.enabled and not merge:
            logger.warning("release-format export skipped: export.merge_lora=false (the release layout is merged)")
        else:
            name = ex.get("name") or Path(run_dir).name
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
