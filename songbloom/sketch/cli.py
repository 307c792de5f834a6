"""``python -m songbloom.sketch {train,tokenize,eval,info,recover}``: codebook training, tokenisation, evaluation,
inspection, and recovery of a base model's own sketch ids (docs/sketch_recovery.md).

Also the ``songbloom-sketch`` command (``songbloom.cli.sketch``). The code lives here, in the sketch layer, so that
``python -m songbloom.sketch`` runs it without an upward import (``songbloom/sketch/__main__.py`` only calls ``main``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from pathlib import Path

from songbloom.sketch.artifact import load_codebook, recovered_from
from songbloom.sketch.muq_backbone import DEFAULT_MUQ_MODEL_ID, build_tiny_muq, load_muq
from songbloom.sketch.sources import AudioItem, SkippedItem, collect_items, load_audio
from songbloom.sketch.trainer import CodebookTrainer, CodebookTrainingConfig

logger = logging.getLogger("songbloom.sketch")


def _add_sources(p: argparse.ArgumentParser, prefix: str = "", required: bool = False) -> None:
    what = "held-out " if prefix else ""
    g = p.add_argument_group(f"{what}audio sources" + (" (at least one)" if required else ""))
    g.add_argument(f"--{prefix}audio-dir", action="append", default=[], metavar="DIR",
                   help=f"{what}directory walked for wav/flac/mp3/ogg (repeatable)")
    g.add_argument(f"--{prefix}manifest", action="append", default=[], metavar="JSONL",
                   help=f"{what}JSONL manifest with an 'audio_path' per line (repeatable)")
    g.add_argument(f"--{prefix}shards", action="append", default=[], nargs="+", metavar="TAR",
                   help=f"{what}tar shards; every audio member is one clip (repeatable)")
    if not prefix:
        g.add_argument("--shard-member-suffix", default=None, metavar="SUFFIX",
                       help="only shard members ending in SUFFIX, e.g. .audio.flac (default: any audio)")


def _gather(args: argparse.Namespace, prefix: str = "") -> tuple[list[AudioItem], list[SkippedItem], dict]:
    attr = prefix.replace("-", "_")
    dirs = getattr(args, f"{attr}audio_dir")
    manifests = getattr(args, f"{attr}manifest")
    shards = [s for group in getattr(args, f"{attr}shards") for s in group]
    items, skipped = collect_items(audio_dirs=dirs, manifests=manifests, shards=shards,
                                   shard_member_suffix=args.shard_member_suffix)
    return items, skipped, {"audio_dirs": dirs, "manifests": manifests, "shards": shards}


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a sketch codebook (k-means on MuQ features)")
    _add_sources(t, required=True)
    _add_sources(t, prefix="heldout-")
    t.add_argument("--heldout-fraction", type=float, default=0.05,
                   help="fraction of clips held out (by key hash) when no held-out source is given")
    t.add_argument("--num-codes", type=int, required=True, help="codebook size (16384 for the released models)")
    t.add_argument("--num-pitch", type=int, default=None, help="refuse to train unless num-codes equals this")
    m = t.add_mutually_exclusive_group()
    m.add_argument("--muq", default=DEFAULT_MUQ_MODEL_ID, help="MuQ hub id or local save_pretrained dir")
    m.add_argument("--tiny-muq-seed", type=int, default=None,
                   help="build a tiny random MuQ (demo/tests) in WORK_DIR/tiny_muq instead of loading one")
    t.add_argument("--layer", type=int, default=-1, help="MuQ hidden state to quantise (0 = encoder input, -1 = last)")
    t.add_argument("--normalisation", choices=["standardize", "l2", "none"], default="standardize")
    t.add_argument("--epochs", type=int, default=3)
    t.add_argument("--batch-frames", type=int, default=4096)
    t.add_argument("--shuffle-buffer-frames", type=int, default=65536)
    t.add_argument("--init", choices=["kmeans++", "random"], default="kmeans++")
    t.add_argument("--init-sample-frames", type=int, default=None, help="default max(4 * num_codes, 2048)")
    t.add_argument("--reseed-every", type=int, default=50, help="minibatches between dead-code re-seeding (0 = off)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    t.add_argument("--chunk-seconds", type=float, default=30.0)
    t.add_argument("--context-seconds", type=float, default=5.0)
    t.add_argument("--muq-batch-size", type=int, default=8)
    t.add_argument("--checkpoint-every", type=int, default=200, help="clips between resumable checkpoints")
    t.add_argument("--work-dir", required=True, help="feature cache + resumable state")
    t.add_argument("--out", required=True, help="artifact path (.safetensors); metrics go beside it")
    t.add_argument("--overwrite", action="store_true", help="discard a work dir left by a different configuration")
    t.add_argument("--no-progress", action="store_true")

    k = sub.add_parser("tokenize", help="audio -> sketch token ids (one safetensors per clip + index.jsonl)")
    k.add_argument("--codebook", required=True)
    k.add_argument("inputs", nargs="*", help="audio files")
    _add_sources(k)
    k.add_argument("--out-dir", required=True)
    k.add_argument("--muq", default=None, help="override the MuQ location recorded in the codebook")
    k.add_argument("--device", default="cpu")
    k.add_argument("--batch-files", type=int, default=8)
    k.add_argument("--strict", action="store_true", help="exit 1 when any clip was skipped (default: none tokenised)")

    e = sub.add_parser("eval", help="codebook metrics on held-out audio")
    e.add_argument("--codebook", required=True)
    _add_sources(e)
    e.add_argument("--muq", default=None, help="override the MuQ location recorded in the codebook")
    e.add_argument("--device", default="cpu")
    e.add_argument("--out", default=None, help="write the metrics JSON here")

    i = sub.add_parser("info", help="what a codebook artifact is: kind, size, MuQ, hash, recovered from which base")
    i.add_argument("--codebook", required=True)
    i.add_argument("--json", action="store_true", help="print the whole metadata as JSON")

    r = sub.add_parser("recover", help="recover a base model's own sketch ids as a codebook (corpus, fit, report)",
                       description="Generate a self-distillation corpus with the base model, fit a tokenizer from "
                                   "audio to its sketch ids, and report on your songs (docs/sketch_recovery.md).")
    from songbloom.sketch.recovery.recover_cli import add_recover_arguments

    add_recover_arguments(r)
    return parser


def _cmd_train(args: argparse.Namespace) -> int:
    items, skipped, sources = _gather(args)
    if not (sources["audio_dirs"] or sources["manifests"] or sources["shards"]):
        raise SystemExit("train: give at least one of --audio-dir, --manifest, --shards")
    held_items, held_skipped, held_sources = _gather(args, "heldout-")
    has_heldout = any(held_sources.values())
    if args.tiny_muq_seed is not None:
        muq_dir = Path(args.work_dir) / "tiny_muq"
        muq = build_tiny_muq(args.tiny_muq_seed, muq_dir)
        muq_id = str(muq_dir.resolve())
    else:
        muq, muq_id = load_muq(args.muq, device=args.device), args.muq
    cfg = CodebookTrainingConfig(
        num_codes=args.num_codes, layer=args.layer, normalisation=args.normalisation, epochs=args.epochs,
        batch_frames=args.batch_frames, shuffle_buffer_frames=args.shuffle_buffer_frames, init=args.init,
        init_sample_frames=args.init_sample_frames, reseed_every=args.reseed_every, seed=args.seed,
        heldout_fraction=args.heldout_fraction, num_pitch=args.num_pitch, device=args.device,
        chunk_seconds=args.chunk_seconds, context_seconds=args.context_seconds, muq_batch_size=args.muq_batch_size,
        checkpoint_every_files=args.checkpoint_every,
    )
    trainer = CodebookTrainer(cfg, muq, muq_model_id=muq_id, work_dir=args.work_dir, overwrite=args.overwrite,
                              progress=not args.no_progress)
    result = trainer.run(items, args.out, heldout_items=held_items if has_heldout else None,
                         source_skipped=skipped + held_skipped, sources={"train": sources, "heldout": held_sources})
    where = "held-out" if result.heldout_is_separate else "TRAINING (no held-out clips)"
    print(f"codebook: {result.artifact_path}  hash={result.codebook.codebook_hash}  codes={result.codebook.num_codes}")
    print(f"metrics on {where} audio ({result.metrics_path}):")
    print(result.metrics.format_table())
    print(f"skipped clips: {len(result.skipped)}" + (f" (see {Path(args.work_dir) / 'skipped.jsonl'})"
                                                     if result.skipped else ""))
    return 0


def _tokenizer(args: argparse.Namespace):
    from songbloom.sketch.tokenizer import SketchTokenizer

    codebook = load_codebook(args.codebook)
    muq = load_muq(args.muq, device=args.device) if args.muq else None
    return SketchTokenizer(codebook, muq=muq, device=args.device)


def _cmd_tokenize(args: argparse.Namespace) -> int:
    from safetensors.torch import save_file

    items, skipped, _ = _gather(args)
    items = [AudioItem(key=str(Path(p).resolve()), path=str(Path(p).resolve())) for p in args.inputs] + items
    if not items:
        raise SystemExit("tokenize: no audio given (positional files, --audio-dir, --manifest or --shards)")
    tok = _tokenizer(args)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {k: str(v) for k, v in tok.cache_record.items()}
    written = 0
    with (out_dir / "index.jsonl").open("a", encoding="utf-8") as index:
        for b in range(0, len(items), args.batch_files):
            by_sr: dict[int, list[tuple[AudioItem, object]]] = {}
            for item in items[b : b + args.batch_files]:
                try:
                    wav, sr = load_audio(item)
                except ValueError as exc:
                    skipped.append(SkippedItem(item.key, str(exc)))
                    continue
                by_sr.setdefault(sr, []).append((item, wav))
            for sr, pairs in by_sr.items():
                for (item, _), ids in zip(pairs, tok.tokenize_many([w for _, w in pairs], sr)):
                    stem = Path(item.member or item.path).name.split(".")[0]
                    name = f"{stem}-{hashlib.sha1(item.key.encode()).hexdigest()[:8]}.sketch.safetensors"
                    save_file({"tokens": ids.contiguous()}, str(out_dir / name),
                              metadata={**record, "source": item.key, "sample_rate": str(sr)})
                    index.write(json.dumps({"source": item.key, "tokens_path": name, "num_frames": int(ids.numel()),
                                            **record}) + "\n")
                    written += 1
    print(f"tokenised {written} clips with codebook {tok.codebook_hash} -> {out_dir}; skipped {len(skipped)}")
    return _exit_code(written, skipped, strict=args.strict, what="tokenised")


def _exit_code(landed: int, skipped: list[SkippedItem], *, strict: bool, what: str) -> int:
    """Every skipped item with its reason; 1 when nothing landed or (``strict``) anything was skipped."""
    for s in skipped:
        print(f"  skipped {s.key}: {s.reason}", file=sys.stderr)
    if not landed:
        print(f"error: nothing was {what}: fix the items above and run again", file=sys.stderr)
        return 1
    return 1 if strict and skipped else 0


def _cmd_eval(args: argparse.Namespace) -> int:
    items, skipped, _ = _gather(args)
    if not items:
        raise SystemExit("eval: no audio given (--audio-dir, --manifest or --shards)")
    tok = _tokenizer(args)
    feats = []
    for item in items:
        try:
            wav, sr = load_audio(item)
        except ValueError as exc:
            skipped.append(SkippedItem(item.key, str(exc)))
            continue
        feats.append(tok.features(wav, sr)[0])
    if not feats:
        return _exit_code(0, skipped, strict=False, what="evaluated")
    metrics = tok.evaluate_features(feats)
    print(f"codebook {tok.codebook_hash} on {len(feats)} clips (skipped {len(skipped)}):")
    print(metrics.format_table())
    if args.out:
        Path(args.out).write_text(json.dumps({"codebook_hash": tok.codebook_hash, **metrics.to_dict()}, indent=2))
    return 0


def codebook_summary(meta: dict) -> list[tuple[str, str]]:
    """The rows ``info`` prints: identity, tokenizer and, for a recovered codebook, its base and corpus."""
    rows = [("hash", str(meta["codebook_hash"])), ("format version", str(meta.get("format_version"))),
            ("tokenizer kind", str(meta["tokenizer_kind"])), ("codes", str(meta["codebook_size"])),
            ("feature dim", str(meta["feature_dim"])), ("MuQ", f"{meta['muq_model_id']} (layer {meta['muq_layer']}, "
                                                         f"fingerprint {meta['muq_fingerprint']})"),
            ("normalisation", str(meta["feature_normalisation"])), ("MuQ licence", str(meta.get("muq_licence")))]
    if meta.get("switch_bonus"):
        rows.append(("decoding", f"songs whole, switch bonus {float(meta['switch_bonus']):.3f} nats"))
    recovery = recovered_from(meta)
    if recovery is None:
        return [*rows, ("recovered", "no (its ids are new to every base model: the sketch tables train)")]
    base, corpus = recovery["base"], recovery["corpus"]
    return [*rows, ("recovered from", f"{base['name']} (num_pitch {base['num_pitch']})"),
            ("base sketch tables", base["sketch_tables_sha256"]), ("method", recovery["method"]),
            ("corpus", f"{corpus['songs']} songs, {corpus['frames']} frames, {float(corpus['seconds']):.0f} s"),
            *((f"metric {k}", str(v)) for k, v in recovery["metrics"].items())]


def _cmd_info(args: argparse.Namespace) -> int:
    meta = load_codebook(args.codebook).metadata
    if args.json:
        print(json.dumps(meta, indent=1, sort_keys=True))
        return 0
    rows = codebook_summary(meta)
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k.ljust(width)}  {v}" for k, v in rows))
    return 0


def _cmd_recover(args: argparse.Namespace) -> int:
    from songbloom.sketch.recovery.recover_cli import run_recover

    return run_recover(args)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        commands = {"train": _cmd_train, "tokenize": _cmd_tokenize, "eval": _cmd_eval, "info": _cmd_info,
                    "recover": _cmd_recover}
        return commands[args.command](args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
