"""Build our SongBloom from a fork ``.ckpt``, and convert such a file into our release-format export.

Model settings come from the checkpoint: the fork stores the whole release YAML it trained with (plus
its ``train``/``train_dataset`` patches) as the LightningModule hyper-parameters. Its ``${eval:...}`` and
file interpolations are resolved by our safe release-YAML loader; file paths that pointed into the fork's
download cache are replaced by files beside the checkpoint (or the vocabulary packaged with songbloom,
which is the release one). A checkpoint without stored settings needs a release YAML beside it or passed
explicitly. The fork's LoRA flags are never needed: targets and rank are read from the tensors.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from songbloom.checkpoints.bundle import SongBloom, release_yaml_candidates
from songbloom.checkpoints.fork_file import ForkCheckpoint, looks_like_fork_checkpoint, read_fork_checkpoint
from songbloom.checkpoints.fork_key_mapping import MappingReport, map_fork_state_dict
from songbloom.checkpoints.keys import RELEASE_VAE_JSON, RELEASE_VOCAB
from songbloom.checkpoints.registry import CheckpointFormat, LoadOptions
from songbloom.checkpoints.release_state import save_release_checkpoint
from songbloom.checkpoints.release_yaml_writer import write_release_yaml
from songbloom.checkpoints.strict import CheckpointMismatchError, strict_load
from songbloom.config import SongBloomConfig
from songbloom.config.release_yaml import load_release_yaml
from songbloom.licences import UNKNOWN, licence_record, merge_licences, warn_if_non_commercial
from songbloom.models.songbloom import SongBloomModel
from songbloom.models.vae import VAEConfig
from songbloom.models.vae_factory import AnyVAE, AnyVAEConfig, build_vae, vae_config_from_json
from songbloom.text.vocab import DEFAULT_VOCAB_PATH
from songbloom.utils.atomic import atomic_write

logger = logging.getLogger(__name__)

VAE_JSON, VOCAB = RELEASE_VAE_JSON, RELEASE_VOCAB
PACKAGED_VOCAB = DEFAULT_VOCAB_PATH
REPORT_SUFFIX = ".mapping.json"

@dataclass
class ForkModel:
    config: SongBloomConfig
    vae_config: AnyVAEConfig
    generator_sd: dict[str, torch.Tensor]
    vae_sd: dict[str, torch.Tensor]
    report: MappingReport


# ------------------------------------------------------------------------------------------------ settings
def _release_yaml_beside(ckpt: Path) -> Path | None:
    same = [ckpt.with_suffix(s) for s in (".yaml", ".yml") if ckpt.with_suffix(s).is_file()]
    if same:
        return same[0]
    found = release_yaml_candidates(ckpt.parent)
    return found[0] if len(found) == 1 else None


def _vocab_list(ckpt: Path, raw_value: Any) -> tuple[list[str], str]:
    if isinstance(raw_value, list):
        return [str(v) for v in raw_value], "stored in the checkpoint"
    beside = ckpt.parent / VOCAB
    path = beside if beside.is_file() else PACKAGED_VOCAB
    vocab = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(vocab, list):
        raise ValueError(f"{path}: the lyric vocabulary must be a YAML list")
    return [str(v) for v in vocab], str(path)


def _vae_config(ckpt: Path, raw_vae_cfg: Any, notes: list[str]) -> tuple[AnyVAEConfig, str]:
    candidates = []
    if isinstance(raw_vae_cfg, str) and "${" not in raw_vae_cfg:
        candidates.append(Path(raw_vae_cfg))
    candidates.append(ckpt.parent / VAE_JSON)
    for c in candidates:
        if c.is_file():
            return vae_config_from_json(c), str(c)
    notes.append(
        f"no VAE json found ({', '.join(map(str, candidates))}); assuming the release VAE ({VAE_JSON}), "
        "which is the only one the fork trains with"
    )
    return VAEConfig.release(), "release preset"


def config_from_hparams(
    ckpt: Path, hparams: dict[str, Any], notes: list[str]
) -> tuple[SongBloomConfig, AnyVAEConfig, str]:
    """Our config from the fork's stored cfg, with file references re-pointed (see the module docstring)."""

    raw = dict(hparams)
    model = dict(raw.get("model") or {})
    cond = dict(model.get("condition_provider_cfg") or {})
    lyrics = dict(cond.get("lyrics") or {})
    vocab, vocab_source = _vocab_list(ckpt, lyrics.get("vocab_list"))
    lyrics["vocab_list"] = vocab
    cond["lyrics"] = lyrics
    model["condition_provider_cfg"] = cond
    raw["model"] = model
    vae_raw = dict(raw.get("vae") or {})
    vae_cfg, vae_source = _vae_config(ckpt, vae_raw.get("vae_cfg"), notes)
    # File paths of the fork's machine mean nothing here: the weights are in the checkpoint itself.
    vae_raw["vae_cfg"] = None
    vae_raw["vae_ckpt"] = None
    raw["vae"] = vae_raw
    raw["pretrained_path"] = str(ckpt.resolve())
    notes.append(f"lyric vocabulary: {vocab_source}")
    with tempfile.TemporaryDirectory(prefix="fork_cfg_") as tmp:
        path = Path(tmp) / "fork_hparams.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8")
        try:
            resolved = load_release_yaml(path, model_dir=ckpt.parent)
        except ValueError as e:
            raise ValueError(f"{ckpt}: the config stored in the checkpoint cannot be read: {e}") from e
    try:
        cfg = SongBloomConfig.from_release_dict(resolved)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{ckpt}: the config stored in the checkpoint does not describe a SongBloom model: {e}") from e
    cfg.vae_config_path = vae_source if vae_source != "release preset" else None
    return cfg, vae_cfg, vae_source


def fork_settings(
    ckpt: ForkCheckpoint, config_path: Path | None, notes: list[str]
) -> tuple[SongBloomConfig, AnyVAEConfig, str, str]:
    """(config, VAE config, where the config came from, where the VAE config came from)."""
    path = ckpt.path
    if config_path is None and ckpt.hparams and "model" in ckpt.hparams:
        cfg, vae_cfg, vae_source = config_from_hparams(path, ckpt.hparams, notes)
        return cfg, vae_cfg, "checkpoint hyper_parameters", vae_source
    yaml_path = config_path or _release_yaml_beside(path)
    if yaml_path is None:
        raise FileNotFoundError(
            f"{path}: the checkpoint stores no model config (hyper_parameters); pass the release YAML it was trained "
            f"from (infer.py --config X.yaml, or scripts/convert_fork_checkpoint.py ... --config X.yaml)"
        )
    cfg = SongBloomConfig.from_release_yaml(yaml_path)
    if cfg.vae_config_path and Path(cfg.vae_config_path).is_file():
        vae_cfg, vae_source = vae_config_from_json(cfg.vae_config_path), cfg.vae_config_path
    else:
        vae_cfg, vae_source = _vae_config(path, None, notes)
    return cfg, vae_cfg, str(yaml_path), vae_source


def fork_licences() -> list[dict[str, Any]]:
    """The fork records no licences: its data and base weights are of unknown terms until the user says so."""
    return merge_licences(
        licence_record(
            "SongBloom base weights the fork fine-tuned", UNKNOWN, url="https://huggingface.co/CypressYang/SongBloom"
        ),
        licence_record("the fork run's training data (not recorded in its checkpoint)", UNKNOWN),
    )


# ------------------------------------------------------------------------------------------------ loading
def map_fork_checkpoint(
    path: str | Path, *, config_path: str | Path | None = None, lora_alpha: float | None = None
) -> tuple[ForkModel, SongBloomModel, AnyVAE]:
    """Read, configure and map a fork checkpoint; returns the mapped state dicts, report and built modules.

    Raises:
        CheckpointMismatchError: keys could not be mapped or are missing (the report lists them all).
    """
    ckpt = read_fork_checkpoint(path)
    notes: list[str] = []
    cfg, vae_cfg, cfg_source, vae_source = fork_settings(ckpt, Path(config_path) if config_path else None, notes)
    model = SongBloomModel(cfg.model)
    vae = build_vae(vae_cfg)
    gen_sd, vae_sd, report = map_fork_state_dict(
        ckpt.state_dict,
        {k: tuple(v.shape) for k, v in model.state_dict().items()},
        {k: tuple(v.shape) for k, v in vae.state_dict().items()},
        lora_alpha=lora_alpha,
        source=str(ckpt.path),
    )
    report.config_source, report.vae_config_source = cfg_source, vae_source
    report.licences = fork_licences()
    report.notes = notes + report.notes
    if ckpt.global_step is not None:
        report.notes.append(f"trained for {ckpt.global_step} steps (epoch {ckpt.epoch})")
    report.log()
    return ForkModel(cfg, vae_cfg, gen_sd, vae_sd, report), model, vae


def _raise_if_incomplete(fm: ForkModel, report_path: Path | None) -> None:
    if fm.report.ok:
        return
    where = f" (full report: {report_path})" if report_path else ""
    unmapped = [f"{k} ({why})" for k, why in list(fm.report.unmapped.items())[:10]]
    raise CheckpointMismatchError(
        f"{fm.report.source}: {len(fm.report.unmapped)} key(s) could not be mapped and {len(fm.report.missing)} "
        f"of our keys are missing{where}.\n  unmapped: {unmapped}\n  missing: {fm.report.missing[:10]}\n"
        "hint: a checkpoint of another model size needs its own config (--config); a fork checkpoint whose LoRA "
        "wrappers were renamed cannot be merged automatically",
        missing=fm.report.missing,
        unexpected=list(fm.report.unmapped),
    )


def _try_write_report(report: MappingReport, path: Path) -> Path | None:
    try:
        return report.write_json(path)
    except OSError as e:
        logger.warning("could not write the mapping report to %s (%s); it was logged above", path, e)
        return None


def load_fork_checkpoint(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    config_path: str | Path | None = None,
    lora_alpha: float | None = None,
    report_path: str | Path | None = None,
) -> tuple[SongBloom, MappingReport]:
    """A ready :class:`SongBloom` from a fork ``.ckpt`` (strict: every one of our keys filled, nothing left over).

    The mapping report is logged and written as JSON to ``report_path`` (default ``<ckpt>.mapping.json``
    beside the checkpoint, skipped with a warning where that folder is read-only).
    """

    path = Path(path)
    fm, model, vae = map_fork_checkpoint(path, config_path=config_path, lora_alpha=lora_alpha)
    written = _try_write_report(
        fm.report, Path(report_path) if report_path else path.with_name(path.name + REPORT_SUFFIX)
    )
    _raise_if_incomplete(fm, written)
    strict_load(model, fm.generator_sd, what=f"generator from {path}")
    strict_load(vae, fm.vae_sd, what=f"VAE from {path}")
    return SongBloom._finish(fm.config, model, vae, device, dtype), fm.report


def convert_fork_checkpoint(
    path: str | Path,
    out_dir: str | Path,
    *,
    name: str | None = None,
    config_path: str | Path | None = None,
    lora_alpha: float | None = None,
    overwrite: bool = False,
) -> tuple[Path, MappingReport]:
    """Write a release-format directory (``<name>.pt``/``.yaml``, VAE json + ckpt, vocabulary, report).

    The result loads with our strict loader (``load_checkpoint(out_dir)``) and the official ``infer.py``;
    LoRA adapters are merged into the base weights. ``migration_report.json`` lands in ``out_dir`` first,
    so a failed conversion still explains itself.
    """

    path, out_dir = Path(path), Path(out_dir)
    name = name or path.stem
    pt = out_dir / f"{name}.pt"
    if pt.exists() and not overwrite:
        raise FileExistsError(f"{pt} exists; pass overwrite=True (--overwrite) to replace it")
    out_dir.mkdir(parents=True, exist_ok=True)
    fm, model, vae = map_fork_checkpoint(path, config_path=config_path, lora_alpha=lora_alpha)
    report_path = fm.report.write_json(out_dir / "migration_report.json")
    _raise_if_incomplete(fm, report_path)
    # Same strict check the loader will do, before anything lands in out_dir.
    strict_load(model, fm.generator_sd, what=f"generator from {path}")
    strict_load(vae, fm.vae_sd, what=f"VAE from {path}")
    save_release_checkpoint(pt, fm.generator_sd, fm.vae_sd)
    fm.vae_config.to_json(out_dir / VAE_JSON)
    atomic_write(
        out_dir / "autoencoder_music_dsp1920.ckpt", lambda f: torch.save({"state_dict": fm.vae_sd}, f), binary=True
    )
    write_release_yaml(fm.config, out_dir, yaml_name=f"{name}.yaml", pt_name=pt.name, overwrite=overwrite)
    warn_if_non_commercial(fm.report.licences, f"the converted model in {out_dir}")
    logger.info("converted %s -> %s (%s)", path, out_dir, fm.report.summary())
    return out_dir, fm.report


# ------------------------------------------------------------------------------------------------ the format
FORMAT_NAME = "fork_ckpt"


def _load(path: Path, opts: LoadOptions) -> SongBloom:
    bundle, _ = load_fork_checkpoint(
        path, device=opts.device, dtype=opts.dtype, config_path=opts.config_path, lora_alpha=opts.lora_alpha
    )
    return bundle


FORMAT = CheckpointFormat(
    FORMAT_NAME,
    "a Lightning .ckpt from the ayutaz/SongBloom fork's train_japanese.py (LoRA wrappers merged; "
    "settings from its stored hyper-parameters or a release YAML beside it)",
    looks_like_fork_checkpoint,
    _load,
)
