"""``python -m songbloom.sketch recover``: the flags of a recovery run and what it prints.

The corpus flags come from :func:`~songbloom.sketch.recovery.corpus_args.add_corpus_arguments` (``--requests``,
``--layers``, ``--task-index``/``--num-tasks``, the sampling flags, ...); the probe's flags are named
``--probe-*`` and the report's ``--report-*``/``--fresh-*`` so that none clashes with them (``--steps`` and
``--max-duration`` are the generation's, ``--corpus-seed`` the corpus's).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from songbloom.sketch.muq_backbone import DEFAULT_MUQ_MODEL_ID
from songbloom.sketch.recovery.base_model import DTYPES
from songbloom.sketch.recovery.corpus_args import add_corpus_arguments, corpus_settings_from_args
from songbloom.sketch.recovery.corpus_files import corpus_status
from songbloom.sketch.recovery.corpus_plan import read_plan
from songbloom.sketch.recovery.fit import ProbeFitSettings
from songbloom.sketch.recovery.recover import STAGES, Recovery, RecoveryConfig, RecoveryResult, ReportSettings
from songbloom.sketch.recovery.report import format_report
from songbloom.sketch.switch_decoding import BONUS_RANGE

logger = logging.getLogger(__name__)


def add_recover_arguments(p: argparse.ArgumentParser) -> None:
    """Every flag of ``recover`` on ``p``."""
    p.add_argument("--stage", choices=STAGES, nargs="+", default=["all"],
                   help="generate (one array task of the corpus), fit, report (several run in that order), or all "
                        "(every task here, the fit, and the report when --heldout is given)")
    p.add_argument("--work-dir", required=True, help="corpus, caches and the report live here (resumable)")
    p.add_argument("--out", default=None, help="the recovered codebook (default: WORK_DIR/recovered_codebook"
                                               ".safetensors)")
    m = p.add_argument_group("base model and MuQ")
    m.add_argument("--base", default=None,
                   help="release directory or .pt, export directory, or release name (files in --local-dir or the "
                        "Hub cache; never downloaded)")
    m.add_argument("--local-dir", default=None, help="folder holding the release files of a --base release name")
    m.add_argument("--device", default=None, help="cuda, cuda:N, cpu or mps (default: cuda when available)")
    m.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="generator dtype (the VAE runs fp32)")
    mx = m.add_mutually_exclusive_group()
    mx.add_argument("--muq", default=DEFAULT_MUQ_MODEL_ID, help="MuQ hub id or local save_pretrained folder")
    mx.add_argument("--tiny-muq-seed", type=int, default=None,
                    help="a tiny random MuQ saved in WORK_DIR/tiny_muq (demos, tests)")
    add_corpus_arguments(p)
    p.set_defaults(layers=None)  # generate: [-1]; fit: every layer the corpus holds
    f = p.add_argument_group("fit: a linear probe from MuQ features to the base model's ids")
    f.add_argument("--probe-epochs", type=int, default=ProbeFitSettings.epochs)
    f.add_argument("--probe-lr", type=float, default=ProbeFitSettings.lr)
    f.add_argument("--probe-batch-frames", type=int, default=ProbeFitSettings.batch_frames)
    f.add_argument("--probe-heldout-fraction", type=float, default=ProbeFitSettings.heldout_fraction,
                   help="corpus songs held out for choosing the layer and for the metrics")
    f.add_argument("--probe-seed", type=int, default=ProbeFitSettings.seed)
    f.add_argument("--probe-calibrate-switching", action=argparse.BooleanOptionalAction,
                   default=ProbeFitSettings.calibrate_switching,
                   help="decode each song whole, with a bonus per change of id chosen so decoded ids switch as often "
                        "as the base model's own samples on held-out corpus songs (default: on; --no-... decodes "
                        "frame by frame)")
    f.add_argument("--calibration-songs", default=None, metavar="JSONL",
                   help="your songs (lines with 'audio' or 'audio_path'; the --heldout format works) on which the "
                        "switch bonus is chosen: real audio gives the rate where ids are used (default: the --heldout "
                        "songs when given, else held-out generations)")
    f.add_argument("--refit", action="store_true", help="fit again even when --out was fitted on this corpus")
    r = p.add_argument_group("report: your own songs through recovered and fresh ids")
    r.add_argument("--heldout", default=None, metavar="JSONL",
                   help="lines of {audio (a full song), lyrics, prompt_wav (optional), idx, language}; "
                        "'audio_path' is read as 'audio', so a training manifest works")
    r.add_argument("--fresh-codebook", default=None, metavar="PATH",
                   help="compare with this k-means codebook (default: one fitted on the held-out songs)")
    r.add_argument("--fresh-layer", type=int, default=-1, help="MuQ layer of the fitted fresh codebook")
    r.add_argument("--fresh-epochs", type=int, default=10, help="k-means passes of the fitted fresh codebook")
    r.add_argument("--report-out", default=None, help="report JSON (default: WORK_DIR/report.json)")
    r.add_argument("--report-seed", type=int, default=0, help="flow noise and timesteps (shared by both id sets)")
    r.add_argument("--report-batch-size", type=int, default=2)
    r.add_argument("--report-max-seconds", type=float, default=None,
                   help="cut songs here (default: the model's max_dur)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (log lines only)")


def _device_name(name: str | None) -> str:
    import torch

    return name or ("cuda" if torch.cuda.is_available() else "cpu")


def config_from_args(args: argparse.Namespace) -> RecoveryConfig:
    """The :class:`RecoveryConfig` of the parsed flags."""
    fit = ProbeFitSettings(
        epochs=args.probe_epochs, batch_frames=args.probe_batch_frames, lr=args.probe_lr,
        heldout_fraction=args.probe_heldout_fraction, seed=args.probe_seed, device=_device_name(args.device),
        calibrate_switching=args.probe_calibrate_switching,
    )  # fmt: skip
    report = None
    if args.heldout:
        report = ReportSettings(
            heldout=Path(args.heldout), fresh_codebook=Path(args.fresh_codebook) if args.fresh_codebook else None,
            fresh_layer=args.fresh_layer, fresh_epochs=args.fresh_epochs, seed=args.report_seed,
            batch_size=args.report_batch_size, max_seconds=args.report_max_seconds,
            lyrics_policy=args.lyrics_policy, language=args.language,
        )  # fmt: skip
    return RecoveryConfig(
        work_dir=Path(args.work_dir), base=args.base, requests=Path(args.requests) if args.requests else None,
        out=Path(args.out) if args.out else None, report_path=Path(args.report_out) if args.report_out else None,
        muq=args.muq, tiny_muq_seed=args.tiny_muq_seed, local_dir=args.local_dir, device=args.device,
        dtype=args.dtype, fit=fit, fit_layers=tuple(args.layers) if args.layers else None, refit=args.refit,
        calibration_songs=Path(args.calibration_songs) if args.calibration_songs else None,
        report=report, progress=not args.no_progress,
    )  # fmt: skip


def _print_corpus(rec: Recovery, result: RecoveryResult) -> None:
    r = result.corpus
    assert r is not None
    print(f"corpus task {r.task_index}/{r.num_tasks}: {r.written} song(s) written ({r.frames} frames), "
          f"{r.already_done} already done, {r.redone} redone, {r.skipped_eos} skipped (EOS in the first patch), "
          f"{len(r.failed)} failed -> {rec.config.corpus_dir}")
    plan = read_plan(rec.config.corpus_dir)
    if plan.problems:
        print(f"requests: {len(plan.problems)} line(s) gave no songs:")
        for problem in plan.problems:
            print(f"  {problem}")
    for failure in r.failed:
        print(f"  not generated: {failure}")
    print(corpus_status(rec.config.corpus_dir).summary())


def _print_codebook(rec: Recovery, result: RecoveryResult) -> None:
    cb = result.codebook
    assert cb is not None
    recovery = cb.recovery or {}
    m, corpus = recovery.get("metrics", {}), recovery.get("corpus", {})
    print(f"recovered codebook: {result.codebook_path}  hash={cb.codebook_hash}  kind={cb.tokenizer_kind}  "
          f"codes={cb.num_codes}  MuQ layer {cb.metadata['muq_layer']}")
    print(f"  from {recovery.get('base', {}).get('name')} (sketch tables "
          f"{recovery.get('base', {}).get('sketch_tables_sha256', '?')[:16]}), corpus {corpus.get('songs')} songs, "
          f"{float(corpus.get('seconds', 0.0)):.1f} s")
    print(f"  held-out corpus songs: agreement {m.get('agreement', float('nan')):.3f}, top-5 "
          f"{m.get('agreement_top5', float('nan')):.3f}, most frequent code {m.get('most_frequent_code_rate', 0):.3f}")
    for layer, lm in cb.metadata.get("training", {}).get("per_layer", {}).items():
        print(f"    MuQ layer {layer}: agreement {lm['agreement']:.3f}, top-5 {lm['agreement_top5']:.3f}")
    if "switch_bonus" in m:
        songs = int(m.get("calibration_songs", 0))
        calibration = cb.metadata.get("training", {}).get("calibration_songs", {})
        where = (f"{songs} of your songs ({calibration.get('file')}; {len(calibration.get('skipped', []))} skipped), "
                 f"whose ids now switch on {m.get('calibration_change_rate', float('nan')):.3f} of frames"
                 if songs else "held-out generations (no --calibration-songs)")
        print(f"  songs decoded whole, switch bonus {cb.switch_bonus:.3f} nats chosen on {where}; the base model's "
              f"own ids switch on {m.get('label_change_rate', float('nan')):.3f}")
        print(f"    held-out generations: ids switch on {m.get('decoded_change_rate', float('nan')):.3f} (frame by "
              f"frame {m.get('argmax_change_rate', float('nan')):.3f}), agreement "
              f"{m.get('decoded_agreement', float('nan')):.3f}")
        if cb.switch_bonus in BONUS_RANGE:
            low, high = BONUS_RANGE
            print(f"    the bonus is at the end of the search ({low:g} .. {high:g} nats): no bonus makes the ids "
                  "switch at the base model's rate; is the corpus big enough, the probe's agreement far above the most "
                  "frequent code's?")
        for line in calibration.get("skipped", []):
            print(f"    calibration song skipped: {line}")


def run_recover(args: argparse.Namespace) -> int:
    """The ``recover`` subcommand; 1 when songs of this task could not be generated, else 0."""
    rec = Recovery(config_from_args(args))
    settings = None
    if {"all", "generate"} & set(args.stage):
        corpus_args = argparse.Namespace(**{**vars(args), "layers": args.layers or [-1]})
        settings = corpus_settings_from_args(corpus_args, rec.base.bundle.config)
    result = rec.run(args.stage, corpus_settings=settings, task_index=args.task_index, num_tasks=args.num_tasks)
    if result.corpus is not None:
        _print_corpus(rec, result)
    if result.codebook is not None:
        _print_codebook(rec, result)
    if result.report is not None:
        print(format_report(result.report))
        print(f"report: {rec.config.report_file}")
    elif "all" in args.stage:
        print("no --heldout songs given: no report (run --stage report --heldout songs.jsonl to compare with a "
              "fresh k-means codebook)")
    return 1 if result.corpus is not None and result.corpus.failed else 0
