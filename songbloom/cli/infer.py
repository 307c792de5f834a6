"""``songbloom-infer`` (also ``infer.py``): generate songs from a JSONL of lyrics and style prompts.

The flags are those of the official CLI (compatible).

Each JSONL line is ``{"idx": ..., "lyrics": ..., "prompt_wav": ...}`` as in the official examples; outputs
are ``<output-dir>/<idx>_s<i>.<format>``. Bad lines (invalid JSON or UTF-8 included), missing prompt files and
unusable lyrics are reported with file, line and reason, the other items still run, and a summary closes the run
counting the songs written and the items skipped, with why. Exit code 1 when no song was written, or (with
``--strict``) when any item was skipped.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from songbloom.cli.infer_lyrics import add_lyrics_arguments, encode_lyrics, item_language, jsonl_language, lyrics_policy
from songbloom.utils.mps_env import set_mps_fallback_env_from_argv

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

OUTPUT_FORMATS = ("flac", "wav", "mp3")


@dataclass
class JobItem:
    """One valid JSONL entry."""

    line: int
    idx: str
    lyrics: str
    prompt_path: Path
    language: str | None = None  # the line's "language" (songbloom.cli.infer_lyrics: it comes first)


@dataclass
class ItemProblem:
    file: str
    line: int
    idx: str | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" + (f" (idx {self.idx})" if self.idx is not None else "")
        return f"{where}: {self.reason}"


@dataclass
class RunSummary:
    written: list[Path] = field(default_factory=list)
    problems: list[ItemProblem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------ input
def resolve_prompt_path(raw: str, jsonl_path: Path) -> Path | None:
    """The official CLI opens the path as given (relative to the current directory); we also try the JSONL's folder."""
    p = Path(raw).expanduser()
    if p.is_absolute():
        return p if p.is_file() else None
    for base in (Path.cwd(), jsonl_path.resolve().parent):
        if (base / p).is_file():
            return (base / p).resolve()
    return None


def _parse_line(raw: bytes) -> object:
    """One JSONL line -> its JSON value (None when blank); ValueError saying what is wrong and what to do."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1}); save the file as UTF-8"
        ) from e
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON ({e.msg} at column {e.colno}); write one JSON object per line") from e


def read_jsonl(path: Path) -> tuple[list[JobItem], list[ItemProblem]]:
    """Parse the job file; every bad line becomes a problem naming its line and what to fix."""
    items: list[JobItem] = []
    problems: list[ItemProblem] = []
    seen: dict[str, int] = {}
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SystemExit(f"cannot read --input-jsonl {path}: {e}") from e
    for n, raw_bytes in enumerate(data.splitlines(), start=1):  # decoded line by line: one bad line stays one line
        try:
            obj = _parse_line(raw_bytes)
        except ValueError as e:
            problems.append(ItemProblem(str(path), n, None, str(e)))
            continue
        if obj is None:
            continue
        if not isinstance(obj, dict):
            got = type(obj).__name__
            reason = f"expected a JSON object, got {got}; write one {{idx, lyrics, prompt_wav}} object per line"
            problems.append(ItemProblem(str(path), n, None, reason))
            continue
        idx = obj.get("idx")
        idx_s = None if idx is None else str(idx)
        missing = [k for k in ("idx", "lyrics", "prompt_wav") if obj.get(k) in (None, "")]
        if missing:
            reason = f"missing or empty field(s) {missing}; give every line idx, lyrics and prompt_wav"
            problems.append(ItemProblem(str(path), n, idx_s, reason))
            continue
        if (
            not isinstance(idx, str | int)
            or not isinstance(obj["lyrics"], str)
            or not isinstance(obj["prompt_wav"], str)
        ):
            problems.append(
                ItemProblem(str(path), n, idx_s, "idx must be a string or integer, lyrics and prompt_wav strings")
            )
            continue
        if any(c in idx_s for c in "/\\\0") or idx_s in (".", ".."):
            problems.append(ItemProblem(str(path), n, idx_s, "idx is used as a file name: no path separators"))
            continue
        if idx_s in seen:
            reason = f"duplicate idx (first on line {seen[idx_s]}): outputs would collide; give each line its own idx"
            problems.append(ItemProblem(str(path), n, idx_s, reason))
            continue
        prompt = resolve_prompt_path(obj["prompt_wav"], path)
        if prompt is None:
            where = f"looked in {Path.cwd()} and {path.resolve().parent}"
            reason = f"prompt_wav {obj['prompt_wav']!r} not found ({where}); fix the path"
            problems.append(ItemProblem(str(path), n, idx_s, reason))
            continue
        language, why = jsonl_language(obj)
        if why:
            problems.append(ItemProblem(str(path), n, idx_s, why))
            continue
        seen[idx_s] = n
        items.append(JobItem(n, idx_s, obj["lyrics"], prompt, language))
    return items, problems


# ------------------------------------------------------------------------------------------------ arguments
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description="Generate songs with SongBloom from a JSONL of {idx, lyrics, prompt_wav} (official format).",
    )
    src = ap.add_argument_group("model")
    src.add_argument("--model-name", default="songbloom_full_150s", help="release to use when --ckpt-path is not given")
    src.add_argument("--local-dir", default="./cache", help="folder holding (or receiving) the release files")
    src.add_argument(
        "--ckpt-path",
        default=None,
        help="a checkpoint: release .pt (YAML beside it) or directory, training .ckpt, export or PEFT adapter dir",
    )
    src.add_argument(
        "--base-ckpt", default=None, help="base model under a PEFT adapter dir or an adapter-only training .ckpt"
    )
    src.add_argument("--config", default=None, help="model YAML for a bare weights file (default: found beside it)")
    src.add_argument(
        "--lora-scale", type=float, default=1.0, help="LoRA strength (0 = base, 1 = as trained); no merged copy"
    )
    src.add_argument("--local-only", action="store_true", help="never download: use --local-dir / the Hub cache only")
    fork = ap.add_argument_group(
        "fork compatibility (ayutaz/SongBloom infer.py flags; settings come from the checkpoint)"
    )
    fork.add_argument("--use-lora", action="store_true", help="accepted; LoRA adapters are found in the checkpoint")
    fork.add_argument("--lora-rank", type=int, default=None, help="accepted; the rank is read from the tensors")
    fork.add_argument(
        "--lora-alpha", type=float, default=None, help="fork LoRA alpha (not stored by the fork; default 32)"
    )
    fork.add_argument("--lora-dropout", type=float, default=None, help="accepted; unused at inference")
    fork.add_argument("--lora-target-modules", default=None, help="accepted; targets are read from the key names")
    io = ap.add_argument_group("input / output")
    io.add_argument("--input-jsonl", required=True)
    io.add_argument("--output-dir", default="./output")
    io.add_argument("--n-samples", type=int, default=2, help="songs per JSONL line")
    io.add_argument("--output-format", default="flac", choices=OUTPUT_FORMATS)
    add_lyrics_arguments(io)
    io.add_argument("--strict", action="store_true", help="exit 1 when any item was skipped (default: none written)")
    run = ap.add_argument_group("run")
    run.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="generator dtype (VAE: fp32)")
    run.add_argument("--device", default=None, help="cuda, cuda:N, cpu or mps (default: cuda when available)")
    run.add_argument("--batch-size", type=int, default=1, help="songs generated together (more = faster per song)")
    run.add_argument("--seed", type=int, default=None, help="song k (item-major) uses seed + k; default: random")
    run.add_argument(
        "--exact-release-rng",
        action="store_true",
        help="one song at a time on the global RNG seeded once, with every official draw (matches the official run)",
    )
    run.add_argument("--max-duration", type=float, default=None, help="longest song in seconds (default: max_dur + 10)")
    run.add_argument("--prompt-latent", default="sample", choices=["sample", "mean"])
    run.add_argument("--no-chunked-decode", action="store_true", help="decode the latent in one VAE pass")
    run.add_argument("--no-cuda-graphs", action="store_true", help="run the GPU sampler eagerly (debugging)")
    smp = ap.add_argument_group("sampling (default: the checkpoint's inference settings)")
    smp.add_argument("--cfg-coef", type=float, nargs="+", default=None, help="one value, or LM and DiT values")
    smp.add_argument("--temp", type=float, default=None)
    smp.add_argument("--top-k", type=int, default=None)
    smp.add_argument("--top-p", type=float, default=None)
    smp.add_argument("--diff-temp", type=float, default=None)
    smp.add_argument("--steps", type=int, default=None, help="DiT Euler steps")
    smp.add_argument("--dit-cfg-type", default=None, choices=["h", "global", "none"])
    smp.add_argument("--penalty-window", type=int, default=None)
    smp.add_argument("--penalty-mode", default="release", choices=["release", "corrected", "none"])
    ap.add_argument("--log-level", default="INFO")
    return ap


def _pick_device(name: str | None, dtype: torch.dtype):
    """Generator device/dtype and the VAE's device (MPS: float32, VAE on CPU where MPS lacks an op)."""
    from songbloom.building.devices import DeviceUnavailableError, resolve_inference_devices

    try:
        return resolve_inference_devices(name, dtype)
    except DeviceUnavailableError as e:
        raise SystemExit(str(e)) from e


def sampling_params(args: argparse.Namespace, config):
    from songbloom.inference.generate import SamplingParams

    over: dict = {"penalty_mode": args.penalty_mode, "exact_release_rng": args.exact_release_rng}
    if args.cfg_coef is not None:
        if len(args.cfg_coef) not in (1, 2):
            raise SystemExit("--cfg-coef takes one value or two (LM, DiT)")
        over["cfg_coef"] = args.cfg_coef[0] if len(args.cfg_coef) == 1 else tuple(args.cfg_coef)
    for name in ("temp", "top_k", "top_p", "diff_temp", "steps", "dit_cfg_type", "penalty_window"):
        if getattr(args, name) is not None:
            over[name] = getattr(args, name)
    max_frames = config.max_frames if args.max_duration is None else args.max_duration * config.frame_rate
    try:
        return SamplingParams.from_inference_config(config.inference, max_frames, **over)
    except ValueError as e:
        raise SystemExit(str(e)) from e


def save_audio(path: Path, audio: torch.Tensor, sample_rate: int, fmt: str) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    sf.write(str(tmp), audio.T.numpy(), sample_rate, format=fmt.upper())
    tmp.replace(path)


# ------------------------------------------------------------------------------------------------ main
def _report(summary: RunSummary, problem: ItemProblem) -> None:
    summary.problems.append(problem)
    logger.error("%s", problem)


def _warn(summary: RunSummary, jsonl: Path, item: JobItem, note: str) -> None:
    summary.warnings.append(f"{jsonl}:{item.line} (idx {item.idx}): {note}")
    logger.warning("%s", summary.warnings[-1])


def _load_bundle(args: argparse.Namespace, device, dtype):
    """The model named by --ckpt-path (any checkpoint format) or --model-name (a release); SystemExit when unusable."""
    from songbloom.checkpoints.bundle import load_release
    from songbloom.checkpoints.registry import load_checkpoint
    from songbloom.inference.fork_flags import fork_flag_notice
    from songbloom.inference.lora_scale import apply_lora_scale, fork_alpha, is_fork_checkpoint

    fork_flag_notice(args)
    try:
        fork = is_fork_checkpoint(args.ckpt_path)
        if args.ckpt_path:
            bundle = load_checkpoint(
                args.ckpt_path,
                device=device,
                dtype=dtype,
                config_path=args.config,
                base_path=args.base_ckpt,
                lora_alpha=fork_alpha(args.lora_alpha, args.lora_scale) if fork else args.lora_alpha,
            )
        else:
            bundle = load_release(
                args.model_name, args.local_dir, device=device, dtype=dtype, local_only=args.local_only
            )
        apply_lora_scale(bundle.model, args.lora_scale, args.ckpt_path or args.model_name, merged_at_load=fork)
        return bundle
    except (OSError, ValueError) as e:  # missing files, unknown layouts, key/shape mismatches: say what and stop
        raise SystemExit(f"cannot load the model: {e}") from e


def _seeding(args: argparse.Namespace) -> tuple[int | None, int]:
    """(base seed for song k = base + k, or None with --exact-release-rng (global RNG seeded here); batch size)."""
    import torch

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    if not args.exact_release_rng:
        logger.info("base seed %d (song k uses %d + k)", seed, seed)
        return seed, args.batch_size
    if args.batch_size != 1:
        logger.warning(
            "--exact-release-rng generates one song at a time (the official RNG stream); ignoring --batch-size"
        )
    torch.manual_seed(seed)
    logger.info("exact release RNG: global seed %d", seed)
    return None, 1


def lyric_format_notes(text: str) -> list[str]:
    """The lyric format checks preprocessing runs (unknown tags, text before any tag, ...), one note per kind."""
    from songbloom.text.lyrics import validate_lyrics

    by_kind: dict[str, list] = {}
    for problem in validate_lyrics(text):
        by_kind.setdefault(problem.kind, []).append(problem)
    return [
        f"lyric format: {ps[0]}" + (f" (and {len(ps) - 1} more like it)" if len(ps) > 1 else "")
        for ps in by_kind.values()
    ]


def _encode_item_lyrics(args, item: JobItem, jsonl: Path, bundle, summary: RunSummary) -> list[int] | None:
    """Lyric ids of one item under ``--lyrics-policy`` (lost text and format problems, as preprocessing checks
    them); None after reporting a failure."""
    policy = lyrics_policy(args)
    try:
        language, source = item_language(item.language, args.language, bundle.training_language, item.lyrics)
        logger.info("%s:%d (idx %s): lyrics read as %s (%s)", jsonl, item.line, item.idx, language, source)
        ids, notes = encode_lyrics(item.lyrics, bundle.vocab, bundle.config.model.lyric_max_len, language=language)
    except Exception as e:  # the text front end raises ValueError subclasses; anything else is reported too
        _report(summary, ItemProblem(str(jsonl), item.line, item.idx, f"lyrics: {e}"))
        return None
    notes = lyric_format_notes(item.lyrics) + notes
    if policy == "drop":
        for note in notes:
            logger.info("%s:%d (idx %s): lyrics (--lyrics-policy drop): %s", jsonl, item.line, item.idx, note)
        return ids
    if policy == "error" and notes:
        reason = "lyrics: " + "; ".join(notes) + " (fix the lyrics, or pass --lyrics-policy warn to generate anyway)"
        _report(summary, ItemProblem(str(jsonl), item.line, item.idx, reason))
        return None
    for note in notes:
        _warn(summary, jsonl, item, note)
    return ids


def _encode_item(args, item: JobItem, jsonl: Path, bundle, pipe, dtype, summary: RunSummary):
    """(lyric ids, prompt moments or None) of one item, or None after reporting why it cannot run."""
    from songbloom.inference.prompt import PromptAudioError, load_prompt_audio, low_sample_rate_note, prompt_moments

    config = bundle.config
    ids = _encode_item_lyrics(args, item, jsonl, bundle, summary)
    if ids is None:
        return None
    note = low_sample_rate_note(item.prompt_path, pipe.sample_rate)
    if note:
        _warn(summary, jsonl, item, note)
    try:
        wav = load_prompt_audio(item.prompt_path, pipe.sample_rate, config.prompt_len)
        moments = prompt_moments(bundle.vae, wav, dtype)
    except PromptAudioError as e:
        _report(summary, ItemProblem(str(jsonl), item.line, item.idx, f"prompt: {e}"))
        return None
    if moments is None:
        msg = f"prompt {item.prompt_path} is shorter than the VAE minimum; generating without a style prompt"
        _warn(summary, jsonl, item, msg)
    return ids, moments


def _prepare_requests(args, items: list[JobItem], jsonl: Path, bundle, pipe, dtype, base_seed, summary: RunSummary):
    """Every valid item with its lyrics and prompt encoded once, as ``n_samples`` requests (song k: seed base + k,
    k counting the songs of failed items too, so a song's seed does not depend on other lines)."""
    from songbloom.inference.pipeline import SongRequest

    requests: list[tuple[JobItem, SongRequest]] = []
    for n, item in enumerate(items):
        encoded = _encode_item(args, item, jsonl, bundle, pipe, dtype, summary)
        if encoded is None:
            continue
        ids, moments = encoded
        for i in range(args.n_samples):
            k = n * args.n_samples + i
            seed = None if base_seed is None else base_seed + k
            requests.append((item, SongRequest(f"{item.idx}_s{i}", ids, moments, seed)))
    return requests


def _generate_chunk(args, chunk, pipe, params, config, jsonl: Path, out_dir: Path, summary: RunSummary) -> None:
    """Generate one batch of requests with a progress bar per song and write the songs; a failure is reported."""
    from tqdm import tqdm

    bars = [
        tqdm(total=params.max_patches(config.model.block_size), desc=req.name, unit="patch", position=j, leave=True)
        for j, (_, req) in enumerate(chunk)
    ]

    def progress(done: int, running: list[int]) -> None:
        for j in running:
            bars[j].update(1)

    t0 = time.perf_counter()
    try:
        results = pipe.generate([req for _, req in chunk], progress=progress)
    except (RuntimeError, ValueError) as e:  # e.g. out of memory: report these songs, keep going
        for item, req in chunk:
            _report(summary, ItemProblem(str(jsonl), item.line, item.idx, f"{req.name}: generation failed: {e}"))
        return
    finally:
        for bar in bars:
            bar.close()
    elapsed = time.perf_counter() - t0
    for (item, _), res in zip(chunk, results, strict=True):
        path = out_dir / f"{res.request.name}.{args.output_format}"
        save_audio(path, res.audio, res.sample_rate, args.output_format)
        write_song_sidecar(path, args, item, res, params)
        summary.written.append(path)
        seconds = res.audio.shape[-1] / res.sample_rate
        logger.info(
            "%s: %.2f s of audio (%s) in %.1f s -> %s", res.request.name, seconds, res.song.stop_reason, elapsed, path
        )


@functools.lru_cache(maxsize=8)
def _fingerprint(path: str) -> str | None:
    from songbloom.utils.provenance import path_fingerprint

    return path_fingerprint(path) if Path(path).exists() else None


def write_song_sidecar(song: Path, args: argparse.Namespace, item: JobItem, res, params) -> Path:
    """``<song>.json`` beside each song: what produced it (checkpoint and its fingerprint, seed, every sampling
    setting, language, LoRA scale, lyrics, prompt, songbloom and torch versions); docs/inference.md."""
    from songbloom.utils.atomic import atomic_write_json
    from songbloom.utils.provenance import package_versions, songbloom_version

    weights = args.ckpt_path or args.local_dir
    lora_scale = getattr(args, "lora_scale", None)
    record = {
        "song": song.name,
        "idx": item.idx,
        "checkpoint": {
            "ckpt_path": args.ckpt_path,
            "model_name": None if args.ckpt_path else args.model_name,
            "local_dir": None if args.ckpt_path else args.local_dir,
            "base_ckpt": args.base_ckpt,
            "fingerprint": _fingerprint(str(weights)) if weights else None,
        },
        "seed": res.request.seed,
        "base_seed": args.seed,
        "sampling": params.as_dict(),
        "language": getattr(item, "language", None) or getattr(args, "language", None),
        "lora_scale": 1.0 if lora_scale is None else float(lora_scale),
        "lyrics": item.lyrics,
        "prompt_wav": str(item.prompt_path),
        "stop_reason": res.song.stop_reason,
        "seconds": res.audio.shape[-1] / res.sample_rate,
        "dtype": args.dtype,
        "songbloom_version": songbloom_version(),
        "packages": package_versions(("torch", "torchaudio", "safetensors")),
    }
    return atomic_write_json(song.with_suffix(".json"), record)


def run(args: argparse.Namespace) -> RunSummary:
    import torch

    from songbloom.inference.pipeline import SongBloomPipeline

    summary = RunSummary()
    jsonl = Path(args.input_jsonl)
    if not jsonl.is_file():
        raise SystemExit(f"--input-jsonl {jsonl} does not exist")
    if args.n_samples < 1 or args.batch_size < 1:
        raise SystemExit("--n-samples and --batch-size must be >= 1")
    items, problems = read_jsonl(jsonl)
    for p in problems:
        _report(summary, p)
    plan = _pick_device(args.device, getattr(torch, args.dtype))
    bundle = _load_bundle(args, plan.device, plan.dtype)
    bundle.vae.to(plan.vae_device)
    config = bundle.config
    params = sampling_params(args, config)
    pipe = SongBloomPipeline(
        bundle,
        params,
        prompt_latent=args.prompt_latent,
        chunked_decode=not args.no_chunked_decode,
        cuda_graphs=False if args.no_cuda_graphs else None,
    )
    base_seed, batch_size = _seeding(args)
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Prepare every valid item (lyrics + prompt encoded once), then generate in batches.
    requests = _prepare_requests(args, items, jsonl, bundle, pipe, plan.dtype, base_seed, summary)
    for start in range(0, len(requests), batch_size):
        _generate_chunk(args, requests[start : start + batch_size], pipe, params, config, jsonl, out_dir, summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    set_mps_fallback_env_from_argv(argv)  # before torch is imported (this module imports it lazily)
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO), format="%(levelname)s %(message)s"
    )
    summary = run(args)
    return report_summary(summary, args.output_dir, strict=args.strict)


def report_summary(summary: RunSummary, output_dir: str, *, strict: bool) -> int:
    """Print what landed and what was skipped (and why); exit code 1 when nothing landed or, with ``strict``, when
    anything was skipped."""
    n_skipped = len({(p.line, p.idx) for p in summary.problems})
    print(
        f"\nsummary: {len(summary.written)} song(s) written to {output_dir}; "
        f"{n_skipped} item(s) skipped; {len(summary.warnings)} warning(s)",
        file=sys.stderr,
    )
    for p in summary.problems:
        print(f"  SKIPPED {p}", file=sys.stderr)
    if not summary.written:
        print("nothing was written: fix the items above and run again", file=sys.stderr)
        return 1
    return 1 if strict and summary.problems else 0
