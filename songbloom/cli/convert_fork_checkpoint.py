"""Convert a checkpoint of the ayutaz/SongBloom fork (train_japanese.py .ckpt) into our release-format directory.

The ``songbloom-convert-fork-checkpoint`` command (also ``scripts/convert_fork_checkpoint.py``).

    python scripts/convert_fork_checkpoint.py checkpoints/last.ckpt exports/my_japanese_model

The directory then loads with ``infer.py --ckpt-path exports/my_japanese_model`` (strictly) and with the official
SongBloom code. LoRA adapters are merged into the base weights; ``migration_report.json`` lists every key that
was mapped, merged, left unmapped or found missing.
"""

from __future__ import annotations

import argparse
import logging
import sys


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ckpt", help="the fork's Lightning .ckpt (e.g. checkpoints/last.ckpt)")
    ap.add_argument("out_dir", help="directory to write (<name>.pt, <name>.yaml, VAE files, vocabulary, report)")
    ap.add_argument("--name", default=None, help="file stem of the exported model (default: the checkpoint's stem)")
    ap.add_argument("--config", default=None, help="release YAML, when the checkpoint stores no config")
    ap.add_argument("--lora-alpha", type=float, default=None, help="the fork's --lora-alpha if not 32 (not stored)")
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--log-level", default="INFO")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(message)s")

    from songbloom.checkpoints.formats.fork import convert_fork_checkpoint
    from songbloom.checkpoints.strict import CheckpointMismatchError

    try:
        out, report = convert_fork_checkpoint(
            args.ckpt,
            args.out_dir,
            name=args.name,
            config_path=args.config,
            lora_alpha=args.lora_alpha,
            overwrite=args.overwrite,
        )
    except (OSError, ValueError, CheckpointMismatchError) as e:
        print(f"conversion failed: {e}", file=sys.stderr)
        return 1
    print(f"{report.summary()}\nwrote {out} (report: {out / 'migration_report.json'})")
    return 0
