"""The CPU proxy of sketch-id recovery (issue #17), end to end, ending with one ``RESULT {json}`` line.

    python benchmarks/sketch_recovery.py --seed 3 --num-codes 96 [--finetune-frames-per-code 4] [--work-dir DIR]

A tiny teacher SongBloom learns ids from a hidden tokenizer (k-means on a seeded random projection of a seeded
layer of a tiny random MuQ); ``python -m songbloom.sketch recover`` then runs in a subprocess given only the
teacher's release-format export, the proxy VAE inside it and the MuQ folder (the hidden tokenizer's folder is
deleted first). The recovered codebook is scored against the hidden ids, a permutation of them and a fresh
k-means codebook, by id agreement and by the teacher's own teacher-forced AR and flow losses; a LoRA fine-tune on
unseen timbres compares the recovered route (tables kept) with the k-means route (tables retrained); a negative
control (ids independent of the audio) must fail. See benchmarks/README.md for the pass rules and results.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

from songbloom.config.sampling import PENALTY_MODES
from songbloom.proxy import DownstreamSettings, ProxySettings, run_benchmark
from songbloom.sketch.recovery.corpus_plan import CORPUS_SAMPLING_MODES


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0, help="world, MuQ, hidden tokenizer and training seed")
    p.add_argument("--num-codes", type=int, default=64, help="hidden codes = the teacher's num_pitch (16..256)")
    p.add_argument("--finetune-frames-per-code", type=float, default=4.0,
                   help="downstream fine-tune budget: at most this many frames per code (default 4)")
    p.add_argument("--teacher-steps", type=int, default=ProxySettings.teacher_steps,
                   help=f"teacher training steps (default {ProxySettings.teacher_steps})")
    p.add_argument("--teacher-songs", type=int, default=ProxySettings.teacher_songs,
                   help=f"synthetic songs the teacher learns (default {ProxySettings.teacher_songs})")
    p.add_argument("--corpus-penalty-mode", choices=PENALTY_MODES, default=ProxySettings.corpus_penalty_mode,
                   help="the recovery corpus's repetition penalty (default: the recovery's own, none)")
    p.add_argument("--corpus-sampling", choices=CORPUS_SAMPLING_MODES, default=ProxySettings.corpus_sampling,
                   help="the recovery corpus's sampling (default: the recovery's own, unsharpened; model: the "
                        "teacher's settings, as rows before 2026-12-03 16:50 UTC sampled)")
    p.add_argument("--calibrate-switching", action=argparse.BooleanOptionalAction,
                   default=ProxySettings.calibrate_switching,
                   help="songs decoded whole with a calibrated switch bonus (default: on; --no-... frame by frame)")
    p.add_argument("--calibration-songs", type=int, default=ProxySettings.calibration_songs,
                   help="real songs given to recover --calibration-songs (0: the bonus is chosen on held-out "
                        "generations)")
    p.add_argument("--downstream-steps", type=int, default=150)
    p.add_argument("--downstream-seeds", type=int, default=3)
    p.add_argument("--no-downstream", action="store_true", help="skip the LoRA routes (faster)")
    p.add_argument("--no-control", action="store_true", help="skip the negative control (faster)")
    p.add_argument("--work-dir", type=Path, default=None, help="keep every file here (default: a temp dir)")
    return p


def settings_from_args(args: argparse.Namespace) -> ProxySettings:
    if not 16 <= args.num_codes <= 256:
        raise SystemExit(f"--num-codes {args.num_codes}: choose 16..256")
    downstream = None if args.no_downstream else DownstreamSettings(
        steps=args.downstream_steps, seeds=tuple(range(args.downstream_seeds)))
    return ProxySettings(
        seed=args.seed, num_codes=args.num_codes, finetune_frames_per_code=args.finetune_frames_per_code,
        teacher_steps=args.teacher_steps, teacher_songs=args.teacher_songs,
        corpus_penalty_mode=args.corpus_penalty_mode, corpus_sampling=args.corpus_sampling,
        calibrate_switching=args.calibrate_switching,
        calibration_songs=args.calibration_songs,
        downstream=downstream, control=not args.no_control,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = settings_from_args(args)
    if args.work_dir is not None:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        result = run_benchmark(settings, args.work_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="sketch_recovery_") as tmp:
            result = run_benchmark(settings, Path(tmp))
    print("RESULT " + json.dumps(result, sort_keys=True, default=float), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
