"""Compare models (folders of audio, training exports, or a run dir) in one report.

The ``songbloom-evaluate`` command (also ``scripts/evaluate.py``).

Examples::

    # two folders of songs generated from the same prompts and seeds (files matched by name)
    python scripts/evaluate.py --audio base=out/base --audio finetuned=out/ft --reference data/ref \\
        --prompts prompts.jsonl --out reports/ft_vs_base
    # a train.py run dir: its export vs the weights it started from, on its held-out batches
    python scripts/evaluate.py --run-dir runs/demo-1a2b3c --out reports/demo
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import torch

from songbloom.cli.batch_summary import add_strict_flag, finish_batch
from songbloom.eval.audio_io import AudioFolder, load_audio_folder, write_audio
from songbloom.eval.embedders import build_embedder
from songbloom.eval.frechet import DEFAULT_EPS
from songbloom.eval.report import write_report
from songbloom.eval.suite import Prompt, evaluate_folders, load_prompts
from songbloom.eval.teacher_forced import DEFAULT_TIMESTEPS, TeacherForcedMetrics

logger = logging.getLogger(__name__)


def _pairs(values: list[str] | None, flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values or []:
        name, sep, path = v.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"{flag} expects NAME=PATH, got {v!r}")
        if name in out:
            raise SystemExit(f"{flag}: model name {name!r} given twice")
        out[name] = path
    return out


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="report folder (report.json, report.md, *.png, generated audio)")
    src = ap.add_argument_group("what to compare")
    src.add_argument("--audio", action="append", metavar="NAME=DIR", help="a folder of generated songs")
    src.add_argument("--export", action="append", metavar="NAME=DIR",
                     help="a training export (generator.safetensors + config.json): generated and teacher-forced")
    src.add_argument("--run-dir", help="a train.py run dir: its export ('finetuned') vs its initial weights ('base')")
    src.add_argument("--base-export", help="with --run-dir: use this export as 'base' instead of the initial weights")
    src.add_argument("--baseline", help="the model the others are compared to (default: 'base' or the first given)")
    data = ap.add_argument_group("inputs")
    data.add_argument("--reference", help="folder of reference songs (FAD, paired similarity)")
    data.add_argument("--prompts", help="JSON lines {name, lyrics, text, language} for generation and scoring")
    data.add_argument("--held-out", help="torch.save'd list of held-out batches (datamodule layout)")
    data.add_argument("--max-batches", type=int, default=None, help="held-out batches to use (default: all)")
    data.add_argument("--timesteps", type=float, nargs="+", default=list(DEFAULT_TIMESTEPS))
    gen = ap.add_argument_group("generation (exports and run dirs)")
    gen.add_argument("--seeds", type=int, nargs="+", default=[0], help="one song per prompt and seed, for every model")
    gen.add_argument("--seconds", type=float, default=10.0)
    gen.add_argument("--vae", default=None, help="'demo-tiny' or a VAE checkpoint (default: demo-tiny for run dirs)")
    gen.add_argument("--no-generate", action="store_true", help="teacher-forced metrics only")
    met = ap.add_argument_group("metrics")
    met.add_argument("--embedder", default="muq", help="FAD / similarity embedder: muq (default) or mel")
    met.add_argument("--muq", default=None, help="MuQ hub id or local dir for the muq embedder")
    met.add_argument("--fad-eps", type=float, default=DEFAULT_EPS)
    met.add_argument("--mulan", default=None, help="MuQ-MuLan hub id or local dir (text/audio similarity)")
    met.add_argument("--asr", default=None, help="local transformers ASR model dir (lyric error rate)")
    met.add_argument("--unit", default="phoneme", choices=["phoneme", "word", "char"])
    met.add_argument("--device", default="cpu")
    add_strict_flag(ap)
    return ap


def evaluate(argv: list[str] | None = None) -> dict[str, Path]:
    """Run the evaluation the command line asks for; the paths of the written report files."""
    return _evaluate(build_parser().parse_args(argv))[0]


def _evaluate(args: argparse.Namespace) -> tuple[dict[str, Path], dict[str, AudioFolder]]:
    """(report paths, the audio folders read: what landed and what was skipped)."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"seeds": args.seeds, "embedder": args.embedder}
    prompts: dict[str, Prompt] = load_prompts(args.prompts) if args.prompts else {}
    folders: dict[str, AudioFolder] = {name: load_audio_folder(p) for name, p in _pairs(args.audio, "--audio").items()}
    models = _load_models(args, meta)
    results: dict[str, dict[str, Any]] = {name: {"metrics": {}, "skipped": {}} for name in [*folders, *models]}
    reference = load_audio_folder(args.reference) if args.reference else None
    run = _open_run_dir(args, meta)
    history: list[dict[str, float]] = run.history() if run is not None else []
    if models:
        held_out = _held_out_batches(args, run, next(iter(models.values()))[1])
        meta["held_out_batches"] = len(held_out)
        _teacher_forced(args, models, held_out, results)
        if not args.no_generate:
            generated, ref_generated = _generate(args, models, prompts, held_out, out, meta)
            folders.update(generated)
            if reference is None and ref_generated is not None:
                reference = ref_generated
    if reference is not None:
        meta["reference"] = str(reference.root)
    _audio_metrics(args, folders, reference, prompts, results)
    if not results:
        raise SystemExit("nothing to evaluate: give --audio, --export or --run-dir")
    _refuse_empty(results)
    baseline = args.baseline or ("base" if "base" in results else next(iter(results)))
    return write_report(results, out, baseline=baseline, meta=meta, history=history), folders


def _refuse_empty(results: dict[str, dict[str, Any]]) -> None:
    """An evaluation that computed no metric at all says why and exits non-zero (no empty report)."""
    if any(r["metrics"] for r in results.values()):
        return
    why = [f"{name} / {metric}: {reason}" for name, r in results.items() for metric, reason in r["skipped"].items()]
    clips = {name: r.get("clips") for name, r in results.items() if "clips" in r}
    raise SystemExit(
        "nothing was evaluated: no metric could be computed for any model (clips read: "
        f"{clips or 'none'}).\n  - " + "\n  - ".join(why or ["no inputs"])
    )


def main(argv: list[str] | None = None) -> int:
    """The ``songbloom-evaluate`` command: evaluate, then print the report's paths as JSON."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        paths, folders = _evaluate(args)
    except (OSError, ValueError) as e:  # unreadable inputs, refused model folders: say what and stop
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: str(v) for k, v in paths.items()}, indent=1))
    if not folders:  # teacher-forced metrics only: no audio items to count
        return 0
    landed = sum(len(f.clips) for f in folders.values())
    skipped = [_Skipped(file, reason) for f in folders.values() for file, reason in f.skipped.items()]
    return finish_batch(landed, skipped, strict=args.strict, what="clips", where=args.out)


class _Skipped(str):
    """One skipped audio file as ``file: reason`` (for the batch summary)."""

    kind = "unusable audio"

    def __new__(cls, file: str, reason: str):
        return super().__new__(cls, f"{file}: {reason}")


def _open_run_dir(args: argparse.Namespace, meta: dict[str, Any]):
    if not args.run_dir:
        return None
    from songbloom.training.run_dir import RunDir

    run = RunDir.open(args.run_dir)
    meta["run_dir"] = str(run.root)
    return run


def _held_out_batches(args: argparse.Namespace, run, sb_cfg) -> list[Any]:
    """--held-out (a torch.save'd list of batches, read weights-only), else the run dir's held-out batches."""
    if args.held_out:
        from songbloom.checkpoints.safe_load import torch_load_safely

        return torch_load_safely(Path(args.held_out), what="held-out batches")[: args.max_batches]
    if run is not None:
        return run.held_out_batches(sb_cfg, args.max_batches)
    return []


def _teacher_forced(args, models: dict[str, tuple[Any, Any]], held_out: list[Any], results: dict) -> None:
    for name, (model, _) in models.items():
        if not held_out:
            results[name]["skipped"]["teacher_forced"] = "no held-out batches (--held-out or --run-dir)"
            continue
        tf = TeacherForcedMetrics(args.timesteps)
        for batch in held_out:
            tf.update(model.to(args.device), batch)
        results[name]["metrics"].update(tf.compute())


def _audio_metrics(args, folders: dict[str, AudioFolder], reference, prompts, results: dict) -> None:
    embedder = _embedder(args) if folders else None
    mulan = None
    if args.mulan and folders:
        from songbloom.eval.mulan import MuLanScorer

        mulan = MuLanScorer(args.mulan, device=args.device)
    audio_results = evaluate_folders(folders, reference, prompts=prompts, embedder=embedder, mulan=mulan,
                                     asr=args.asr, unit=args.unit, fad_eps=args.fad_eps)
    for name, res in audio_results.items():
        entry = results.setdefault(name, {"metrics": {}, "skipped": {}})
        entry["metrics"].update(res.metrics)
        entry["skipped"].update(res.skipped)
        entry.update(clips=res.clips, paired_with_reference=res.paired_with_reference,
                     transcripts=res.transcripts, skipped_files=folders[name].skipped, caveats=res.caveats)


def _load_models(args: argparse.Namespace, meta: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    exports = _pairs(args.export, "--export")
    if not exports and not args.run_dir:
        return {}
    from songbloom.eval.adapters import load_exported_generator
    from songbloom.training.run_dir import RunDir

    models = {name: load_exported_generator(p) for name, p in exports.items()}
    if args.run_dir:
        run = RunDir.open(args.run_dir)
        ft_model, sb_cfg = load_exported_generator(run.export_dir)
        if args.base_export:
            models.setdefault("base", load_exported_generator(args.base_export))
            meta["base"] = str(args.base_export)
        else:
            models.setdefault("base", (run.initial_model(), sb_cfg))
            meta["base"] = "the run's initial weights (rebuilt from its config and seed)"
        models.setdefault("finetuned", (ft_model, sb_cfg))
    return models


def _generate(args: argparse.Namespace, models: dict[str, tuple[Any, Any]], prompts: dict[str, Prompt],
              held_out: list[Any], out: Path, meta: dict[str, Any]):
    """Songs for every model from the same names, lyrics and seeds; a VAE-decoded held-out reference in run mode."""
    from songbloom.eval.adapters import SongSpec, generate_songs, load_vae_spec, lyric_ids_from_text
    from songbloom.eval.teacher_forced import as_eval_batch

    vae_spec = args.vae or ("demo-tiny" if args.run_dir else None)
    if vae_spec is None:
        logger.warning("no --vae given: songs are not generated (only teacher-forced metrics for exports)")
        return {}, None
    sb_cfg = next(iter(models.values()))[1]
    vae = load_vae_spec(vae_spec)
    songs: list[SongSpec] = []
    reference_clips: dict[str, tuple[torch.Tensor, int]] = {}
    with_lyrics = {n: p for n, p in prompts.items() if p.lyrics}
    if with_lyrics:
        for name, p in with_lyrics.items():
            ids = lyric_ids_from_text(p.lyrics, sb_cfg, p.language)
            songs += [SongSpec(_song_name(name, s, args.seeds), ids, s) for s in args.seeds]
    elif held_out:  # run mode without prompts: the held-out songs' lyrics, the VAE-decoded songs as reference
        for bi, batch in enumerate(held_out):
            b = as_eval_batch(batch)
            for i, ids in enumerate(b.lyric_ids):
                name = f"heldout{bi:02d}_{i:02d}"
                songs += [SongSpec(_song_name(name, s, args.seeds), ids.tolist(), s) for s in args.seeds]
                n = int(b.lengths[i])
                with torch.no_grad():
                    wav = vae.decode(b.latents[i : i + 1, :, :n].float())[0]
                reference_clips[name] = (wav, int(vae.sample_rate))
    if not songs:
        logger.warning("no prompts with lyrics and no held-out batches: nothing to generate")
        return {}, None
    meta["generated_songs_per_model"] = len(songs)
    meta["generation_seconds"] = args.seconds
    folders: dict[str, AudioFolder] = {}
    for model_name, (model, cfg) in models.items():
        clips = generate_songs(model, cfg, vae, songs, seconds=args.seconds)
        for song_name, (wav, sr) in clips.items():
            write_audio(out / "audio" / model_name / f"{song_name}.wav", wav, sr)
        folders[model_name] = load_audio_folder(out / "audio" / model_name)
    reference = None
    if reference_clips:
        for name, (wav, sr) in reference_clips.items():
            write_audio(out / "audio" / "_reference" / f"{name}.wav", wav, sr)
        reference = load_audio_folder(out / "audio" / "_reference")
        meta["reference_kind"] = "held-out latents decoded with the VAE"
    return folders, reference


def _song_name(name: str, seed: int, seeds: list[int]) -> str:
    return name if len(seeds) == 1 else f"{name}_s{seed}"


def _embedder(args: argparse.Namespace):
    if args.embedder == "muq":
        return build_embedder("muq", muq=args.muq, device=args.device)
    return build_embedder(args.embedder)

