"""Encode songs from JSONL manifests into WebDataset shards.

The ``songbloom-preprocess`` command (also ``scripts/preprocess.py``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter

from songbloom.checkpoints.safe_load import DamagedFileError
from songbloom.config import SongBloomConfig
from songbloom.data.encoders import EncoderSpec
from songbloom.data.preprocess import PreprocessConfig, run_preprocess
from songbloom.data.preprocess.lock import STALE_AFTER_S, OutputLocked
from songbloom.data.preprocess.verify import verify_output

SECONDS_PER_TAG = {"full_150s": 1.0, "full_240s": 5.0, "small": 1.0, "tiny": 1.0}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="Encode songs from JSONL manifests into WebDataset shards.")
    ap.add_argument("manifests", nargs="*", help="JSONL manifest(s)")
    ap.add_argument("--out", required=True, help="shard folder (resumable: rerun to continue)")
    g = ap.add_argument_group("encoders")
    g.add_argument("--vae-config", help="VAE json (stable_audio_1920_vae.json)")
    g.add_argument("--vae-ckpt", help="VAE weights")
    g.add_argument("--vae-random", choices=["release", "tiny"], help="random VAE weights (demo/benchmark only)")
    g.add_argument("--codebook", help="sketch codebook artifact (else sketch_tokens/sketch_path from the manifest)")
    g.add_argument(
        "--lyrics-processor",
        choices=["text", "phoneme"],
        default="text",
        help="text: G2P front end; phoneme: lyrics are already vocabulary symbols",
    )
    g.add_argument(
        "--lyrics-policy",
        choices=["error", "warn", "drop"],
        default="error",
        help="what to do with lyric items outside the vocabulary",
    )
    g.add_argument("--num-pitch", type=int, help="model sketch vocabulary (ids must be below it)")
    s = ap.add_argument_group("segments, lyrics and prompts")
    s.add_argument(
        "--model",
        choices=sorted(SECONDS_PER_TAG),
        default="full_150s",
        help="the model the shards are for: its block size, lyric length and seconds per non-vocal tag "
        "(1 s for 150 s models, 5 s for 240 s)",
    )
    s.add_argument("--seconds-per-tag", type=float, help="override --model's value")
    s.add_argument("--segment-seconds", type=float, default=150.0)
    s.add_argument(
        "--prompt-rule",
        choices=["auto", "outside", "file"],
        default="auto",
        help="auto: prompt_wav when given, else 10 s of the same song outside the segment",
    )
    s.add_argument("--prompt-seconds", type=float, default=10.0)
    s.add_argument(
        "--val-fraction",
        type=float,
        default=None,
        help="songs (not segments) held out for validation; 0 = none. Default: one song from three songs on",
    )
    s.add_argument(
        "--keep-untimed-long",
        action="store_true",
        help="keep songs longer than a segment without timestamps whole instead of skipping them",
    )
    s.add_argument("--length-tolerance", type=int, default=0, help="allowed sketch/latent frame difference")
    s.add_argument("--store-audio", action="store_true", help="also store each segment's audio as FLAC")
    s.add_argument("--latent-dtype", choices=["float32", "float16"], default="float32")
    r = ap.add_argument_group("running")
    r.add_argument("--task-index", type=int, help="array task (default: SLURM_ARRAY_TASK_ID, else 0)")
    r.add_argument("--num-tasks", type=int, help="array size (default: SLURM_ARRAY_TASK_COUNT, else 1)")
    r.add_argument("--workers", type=int, default=1, help="encoding processes in this task")
    r.add_argument("--shard-maxcount", type=int, default=64)
    r.add_argument("--device", default="cpu")
    r.add_argument("--overwrite", action="store_true", help="delete the shard folder first")
    r.add_argument("--no-progress", action="store_true")
    r.add_argument(
        "--verify",
        action="store_true",
        help="only check the shard folder: every shard read back against its sidecar; with manifests, also that "
        "every good item is there exactly once",
    )
    r.add_argument("--strict", action="store_true", help="exit with status 3 when any item was skipped")
    r.add_argument(
        "--lock-stale-seconds",
        type=float,
        default=STALE_AFTER_S,
        help="a task lock whose heartbeat is older than this is taken over (on any host)",
    )
    return ap


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.verify and not args.manifests:
        parser.error("give at least one manifest (or --verify to check an existing shard folder)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.verify:
        problems = verify_output(args.out, args.manifests)
        by_kind = dict(Counter(p["kind"] for p in problems))
        print(json.dumps({"ok": not problems, "by_kind": by_kind, "problems": problems}, indent=1, ensure_ascii=False))
        return 1 if problems else 0
    geometry = SongBloomConfig.from_name(args.model).model  # the shards are cut for this model's blocks and prefix
    cfg = PreprocessConfig(
        out_dir=args.out,
        block_size=geometry.block_size,
        lyric_max_len=geometry.lyric_max_len,
        seconds_per_tag=args.seconds_per_tag or SECONDS_PER_TAG[args.model],
        segment_seconds=args.segment_seconds,
        prompt_rule=args.prompt_rule,
        prompt_seconds=args.prompt_seconds,
        lyrics_policy=args.lyrics_policy,
        num_pitch=args.num_pitch,
        val_fraction=args.val_fraction,
        keep_untimed_long=args.keep_untimed_long,
        length_tolerance=args.length_tolerance,
        store_audio=args.store_audio,
        latent_dtype=args.latent_dtype,
        shard_maxcount=args.shard_maxcount,
    )
    spec = EncoderSpec(
        args.vae_config,
        args.vae_ckpt,
        args.vae_random,
        args.codebook,
        args.lyrics_processor,
        args.lyrics_policy,
        device=args.device,
    )
    try:
        report = run_preprocess(
            args.manifests,
            cfg,
            spec,
            args.task_index,
            args.num_tasks,
            args.workers,
            progress=not args.no_progress,
            overwrite=args.overwrite,
            lock_stale_s=args.lock_stale_seconds,
        )
    except OutputLocked as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except DamagedFileError as e:  # a damaged VAE or codebook: say which file, not a traceback
        print(f"error: {e}", file=sys.stderr)
        return 1
    summary = report.to_json()
    summary.pop("skipped")
    summary.pop("segments")  # per segment: lines and seconds of vocals, in reports/task-TTTT.json and the log
    print(json.dumps(summary, indent=1, ensure_ascii=False))
    for p in report.problems:
        print(f"SKIPPED {p.kind}: {p}", file=sys.stderr)
    return _exit_status(report.landed, len(report.problems), args.strict)


def _exit_status(landed: int, skipped: int, strict: bool) -> int:
    """0; 1 when no sample landed (nothing written, nothing already there); 3 with --strict and skipped items."""
    if landed == 0:
        print(f"error: nothing landed ({skipped} items skipped, see above and reports/)", file=sys.stderr)
        return 1
    if strict and skipped:
        print(f"error: --strict and {skipped} items were skipped (see above and reports/)", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
