"""``scripts/export.py``: export any checkpoint we can load, or merge a PEFT adapter at a chosen strength.

    python scripts/export.py export runs/x/checkpoints/last.ckpt --out exports/x            # all formats
    python scripts/export.py export exports/x/release --out exports/y --formats merged       # any format
    python scripts/export.py merge --adapter exports/x/peft_adapter --strength 0.5 --out exports/x_half

Output: ``<out>/release`` (official layout), ``<out>/merged`` (safetensors + config.json) and
``<out>/peft_adapter`` (LoRA training checkpoints only).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

FORMATS = ("release", "merged", "adapter")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="export.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("export", help="export a checkpoint (any format load_checkpoint reads)")
    ex.add_argument("checkpoint", help="training .ckpt, release dir/.pt, export dir, adapter dir, ...")
    ex.add_argument("--out", required=True, help="output directory (release/, merged/, peft_adapter/ inside)")
    ex.add_argument("--formats", nargs="+", choices=FORMATS, default=None, help="default: all that apply")
    ex.add_argument("--name", default=None, help="file stem of the release-format files (default: --out's name)")
    ex.add_argument("--base-ckpt", default=None, help="base model for adapter-only checkpoints and adapter dirs")
    ex.add_argument("--no-ema", action="store_true", help="training checkpoints: the live weights, not the EMA")
    mg = sub.add_parser("merge", help="merge a PEFT adapter (LoRA deltas x strength; fully trained tables as trained)")
    mg.add_argument("--adapter", required=True, help="PEFT adapter directory")
    mg.add_argument("--base-ckpt", default=None, help="base model (default: the adapter's base_model_name_or_path)")
    mg.add_argument("--strength", type=float, default=1.0)
    mg.add_argument("--out", required=True)
    mg.add_argument("--formats", nargs="+", choices=("release", "merged"), default=["release", "merged"])
    mg.add_argument("--name", default=None)
    ap.add_argument("--log-level", default="INFO")
    return ap


def _write(model, config, vae, out: Path, formats: list[str], name: str, meta_kwargs: dict) -> dict[str, Path]:
    from songbloom.checkpoints.formats.merged import export_merged
    from songbloom.checkpoints.formats.release import export_release
    from songbloom.checkpoints.metadata import export_metadata

    paths: dict[str, Path] = {}
    if "merged" in formats:
        paths.update(
            export_merged(model, config, out / "merged", vae=vae, metadata=export_metadata("merged", **meta_kwargs))
        )
    if "release" in formats:
        if vae is None:
            raise SystemExit(
                f"{meta_kwargs.get('source')}: no VAE is known for this model, so no release-format export; "
                "pass --base-ckpt <release dir> to take the VAE from there"
            )
        rel = export_release(
            model, config, vae, out / "release", name=name, metadata=export_metadata("release", **meta_kwargs)
        )
        paths["release_dir"] = rel["release_pt"].parent
    return paths


def _language_meta(run_config: dict) -> dict:
    """The training language to record in every export of a training checkpoint."""
    from songbloom.checkpoints.metadata import TRAINING_LANGUAGE_KEY, run_language

    return {TRAINING_LANGUAGE_KEY: run_language(run_config)}


def export_command(args: argparse.Namespace) -> dict[str, Path]:
    from songbloom.checkpoints.formats.peft_adapter import merge_peft_adapter, save_peft_adapter
    from songbloom.checkpoints.formats.training import load_training_checkpoint
    from songbloom.checkpoints.metadata import export_metadata
    from songbloom.checkpoints.registry import detect_checkpoint_format, load_checkpoint

    src = Path(args.checkpoint)
    out = Path(args.out)
    name = args.name or out.name
    fmt = detect_checkpoint_format(src).name
    formats = list(args.formats or FORMATS)
    meta = {"source": str(src.resolve()), "source_format": fmt}
    if fmt == "lightning_ckpt":
        trained = load_training_checkpoint(src, base=args.base_ckpt, use_ema=not args.no_ema)
        meta.update(licences=trained.licences, global_step=trained.global_step, ema=trained.used_ema)
        meta.update(_language_meta(trained.run_config))
        if trained.sketch_tables is not None:  # kept (recovered) or trained sketch tables, as the run resolved it
            meta["sketch_tables"] = trained.sketch_tables.to_dict()
        paths: dict[str, Path] = {}
        if "adapter" in formats:
            if trained.has_adapters:
                adapter = save_peft_adapter(
                    trained.model,
                    trained.lora,  # type: ignore[arg-type]
                    trained.fully_trained,
                    out / "peft_adapter",
                    config=trained.config,
                    base_model_name_or_path=trained.base_ref,
                    metadata=export_metadata("peft_adapter", **meta),
                )
                paths["peft_adapter"] = adapter["adapter_config"].parent
            elif args.formats:
                raise SystemExit(f"{src}: this run trained no LoRA adapters, so there is no adapter to export")
        paths.update(_write(trained.merged_model(), trained.config, trained.vae, out, formats, name, meta))
        return paths
    if "adapter" in formats and args.formats:
        raise SystemExit(f"{src} ({fmt}): an adapter export needs a LoRA training checkpoint (.ckpt from train.py)")
    formats = [f for f in formats if f != "adapter"]
    if fmt == "peft_adapter":
        from songbloom.checkpoints.formats.peft_adapter import load_adapter_base

        base = load_adapter_base(src, Path(args.base_ckpt) if args.base_ckpt else None)
        model = merge_peft_adapter(base.model.float(), src, 1.0)
        return _write(model, base.config, base.vae, out, formats, name, meta)
    bundle = load_checkpoint(src, base_path=args.base_ckpt)
    return _write(bundle.model.float(), bundle.config, bundle.vae, out, formats, name, meta)


def merge_command(args: argparse.Namespace) -> dict[str, Path]:
    from songbloom.checkpoints.formats.peft_adapter import load_adapter_base, merge_peft_adapter

    src = Path(args.adapter)
    base = load_adapter_base(src, Path(args.base_ckpt) if args.base_ckpt else None)
    model = merge_peft_adapter(base.model.float(), src, args.strength)
    meta = {"source": str(src.resolve()), "source_format": "peft_adapter", "merge_strength": args.strength}
    out = Path(args.out)
    return _write(model, base.config, base.vae, out, list(args.formats), args.name or out.name, meta)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO), format="%(levelname)s %(message)s"
    )
    try:
        paths = export_command(args) if args.command == "export" else merge_command(args)
    except (OSError, ValueError) as e:
        raise SystemExit(f"export failed: {e}") from e
    for key, path in sorted(paths.items()):
        print(f"{key:14s} {path}", file=sys.stderr)
    return 0
