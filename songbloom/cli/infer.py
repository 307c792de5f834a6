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
import logging
import random
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from songbloom.cli.infer_lyrics import add_lyrics_arguments, encode_lyrics, lyrics_policy  # noqa: F401 (re-export)
from songbloom.config.sampling import add_sampling_arguments, sampling_overrides
from songbloom.utils.mps_env import set_mps_fallback_env_from_argv

if TYPE_CHECKING:
    import torch

    from songbloom.inference.generate import SamplingParams
    from songbloom.inference.jobs import ItemProblem, JobItem, RunSummary

logger = logging.getLogger(__name__)

OUTPUT_FORMATS = ("flac", "wav", "mp3")

# The job file is read by songbloom.inference.jobs (shared with sketch recovery); its names stay importable from
# here, loaded on first use so that this module imports no torch before main() has set the MPS fallback.
_JOB_NAMES = ("ItemProblem", "JobItem", "RunSummary", "resolve_prompt_path")


def __getattr__(name: str):
    if name in _JOB_NAMES:
        from songbloom.inference import jobs

        return getattr(jobs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def read_jsonl(path: Path) -> tuple[list[JobItem], list[ItemProblem]]:
    """Parse the job file (:func:`songbloom.inference.jobs.read_jsonl`); an unreadable file stops the run."""
    from songbloom.inference.jobs import JobFileError
    from songbloom.inference.jobs import read_jsonl as _read_jsonl

    try:
        return _read_jsonl(path)
    except JobFileError as e:
        raise SystemExit(f"cannot read --input-jsonl {path}: {e.__cause__ or e}") from e


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
    add_sampling_arguments(smp)
    ap.add_argument("--log-level", default="INFO")
    return ap


def _pick_device(name: str | None, dtype: torch.dtype):
    """Generator device/dtype and the VAE's device (MPS: float32, VAE on CPU where MPS lacks an op)."""
    from songbloom.building.devices import DeviceUnavailableError, resolve_inference_devices

    try:
        return resolve_inference_devices(name, dtype)
    except DeviceUnavailableError as e:
        raise SystemExit(str(e)) from e


def sampling_params(args: argparse.Namespace, config) -> SamplingParams:
    """The checkpoint's inference settings with the sampling flags applied; SystemExit on a bad value."""
    from songbloom.inference.generate import SamplingParams

    try:
        over, max_frames = sampling_overrides(args, config)
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
    from songbloom.inference.jobs import report_problem

    report_problem(summary, problem)


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


def _encode_item(args, item: JobItem, jsonl: Path, bundle, pipe, dtype, summary: RunSummary):
    """(lyric ids, prompt moments or None) of one item, or None after reporting why it cannot run."""
    from songbloom.inference.jobs import encode_item

    return encode_item(
        item, jsonl, bundle, pipe.sample_rate, dtype, summary, policy=lyrics_policy(args), language=args.language
    )


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
        from songbloom.inference.jobs import ItemProblem

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

    from songbloom.inference.jobs import RunSummary
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
