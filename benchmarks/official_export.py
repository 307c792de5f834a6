"""The official SongBloom sampler generates from our release-format export.

    python benchmarks/official_export.py --official-python $OFFICIAL_VENV/bin/python --upstream $OFFICIAL_SRC \
        [--bench-dir ../shared/tools/official_bench] [--preset small] [--patches 2] [--work DIR]

Set-up of the official side (a checkout of tencent-ailab/SongBloom at ef78022 and a venv with its pins):
``../shared/tools/official_bench/README.md``. Nothing official is copied here or edited.

Our side (this interpreter): a generator of ``--preset`` with random weights and a 4-channel random VAE (release
frame geometry), written with ``songbloom.checkpoints.formats.release.export_release`` exactly as ``export.py``
and the run-end export do.
Official side (``--official-python``, this file again with ``--official-part``): ``official_env.load_config``
(the resolvers of the official ``infer.py``), ``SongBloom_Sampler.build_from_trainer(cfg, strict=True)``
(the official strict load), ``set_generation_params(**cfg.inference)``, ``max_frames`` = ``--patches`` patches,
the EOS logit pushed down so every song runs that many patches, then the body of ``sampler.generate``: the
official prompt slice ``prompt_wav[..., :sr * prompt_len]``, the VAE prompt encode, the sampler and the VAE
decode (unchunked: see :func:`official_generate`). Prints ``RESULT {...}`` (the shape of the audio, seconds,
what the strict load printed) and exits non-zero when the official code cannot generate.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAME = "ours"
# Phoneme lyrics (the official front end's symbols), so the official G2P stand-in is never called.
LYRICS = "[intro] [intro] , [verse] n i3 h ao3 w o3 ai4 n i3 . AH0 L AH1 V Y UW1 . , [outro]"


def write_export(work: Path, preset: str) -> Path:
    """Our release-format export of ``preset`` (random generator, a 4-channel random VAE) in ``work/export``."""
    import torch

    from songbloom.checkpoints.formats.release import export_release
    from songbloom.config import SongBloomConfig
    from songbloom.models.songbloom import SongBloomModel
    from songbloom.models.vae import OobleckVAE, VAEConfig

    cfg = SongBloomConfig.from_name(preset)
    torch.manual_seed(0)
    model = SongBloomModel(cfg.model).eval()
    tiny = VAEConfig.tiny()  # 4 channels everywhere, release frame geometry; latent size of the preset
    vae_cfg = VAEConfig._symmetric(channels=4, c_mults=tiny.encoder.c_mults, strides=tiny.encoder.strides,
                                   latent_dim=cfg.model.latent_dim, io_channels=2, sample_rate=48000)
    vae = OobleckVAE(vae_cfg).eval()
    paths = export_release(model, cfg, vae, work / "export", name=NAME)
    return paths["release_yaml"]


def official_generate(sampler, lyrics: str, prompt_wav):
    """``SongBloom_Sampler.generate`` line by line, except the last call: its VAE decode with ``chunked=False``.

    The official chunked decoder (``decode_audio``) fails on a latent shorter than one chunk (its loop never runs
    and ``i`` is unbound), which two patches are; the official ``infer.py`` only ever decodes whole songs.
    """
    if sampler.prompt_duration is not None:
        prompt_wav = prompt_wav[..., : sampler.prompt_duration]  # the slice a float prompt_len breaks
    attributes, _ = sampler._prepare_tokens_and_attributes(
        conditions={"lyrics": [sampler._process_lyric(lyrics)], "prompt_wav": [prompt_wav]},
        prompt=None,
        prompt_tokens=None,
    )
    latent_seq, _ = sampler.diffusion.generate(None, attributes, **sampler.generation_params)
    return sampler.compression_model.decode(latent_seq.float(), chunked=False)


def official_part(export_dir: Path, bench_dir: Path, patches: int) -> dict:
    """Runs under the official venv: load our export with the official loader and generate."""
    import contextlib
    import importlib.util
    import io

    import torch

    # The official-side harness lives in ../shared/tools/official_bench (outside the repo): load it by path.
    spec = importlib.util.spec_from_file_location("official_env", bench_dir / "official_env.py")
    U = importlib.util.module_from_spec(spec)  # noqa: N806 - the harness's module, as its README names it
    sys.modules["official_env"] = U
    spec.loader.exec_module(U)

    torch.set_num_threads(2)
    cfg = U.load_config(str(export_dir / f"{NAME}.yaml"), parent_dir=str(export_dir))
    cfg.max_dur = cfg.max_dur + 10  # as the official infer.py does
    t0 = time.perf_counter()
    log = io.StringIO()
    with contextlib.redirect_stdout(log):  # build_from_trainer prints the load result
        sampler = U.SongBloom_Sampler.build_from_trainer(cfg, strict=True, dtype=torch.float32, device="cpu")
    load_s = time.perf_counter() - t0
    model = sampler.diffusion
    sampler.set_generation_params(max_frames=patches * model.block_size)
    with torch.no_grad():
        model.skeleton_classifier[-1].bias[model.eos_token_id] = -1e4
    prompt = torch.randn(1, 12 * int(cfg.sr), generator=torch.Generator().manual_seed(3)) * 0.1
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        audio = official_generate(sampler, LYRICS, prompt)
    return {
        "load_print": log.getvalue().strip()[-300:],
        "load_s": round(load_s, 2),
        "generate_s": round(time.perf_counter() - t0, 2),
        "audio_shape": list(audio.shape),
        "finite": bool(torch.isfinite(audio).all()),
        "patches": patches,
        "prompt_len": cfg.train_dataset.prompt_len,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--official-python", help="python of the official venv (README of the bench dir)")
    ap.add_argument("--upstream", help="checkout of tencent-ailab/SongBloom at ef78022")
    ap.add_argument("--bench-dir", default=str(Path(__file__).resolve().parents[2] / "shared/tools/official_bench"))
    ap.add_argument("--preset", default="small")
    ap.add_argument("--patches", type=int, default=2)
    ap.add_argument("--work", default=None, help="folder for the export (default: a temporary one)")
    ap.add_argument("--official-part", metavar="EXPORT_DIR", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.official_part:
        result = official_part(Path(args.official_part), Path(args.bench_dir), args.patches)
        print("RESULT " + json.dumps(result))
        return 0
    if not (args.official_python and args.upstream):
        ap.error("--official-python and --upstream are required (see the bench dir's README for the set-up)")
    work = Path(args.work or tempfile.mkdtemp(prefix="songbloom-official-export-"))
    yaml_path = write_export(work, args.preset)
    print(f"our export: {yaml_path.parent}")
    cmd = [args.official_python, __file__, "--official-part", str(yaml_path.parent), "--bench-dir", args.bench_dir,
           "--patches", str(args.patches)]
    env = {**os.environ, "SONGBLOOM_UPSTREAM": str(Path(args.upstream).resolve())}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    sys.stderr.write(proc.stderr[-4000:])
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        print(f"the official sampler could not generate from our export (exit {proc.returncode})")
        return 1
    result = json.loads(lines[-1][len("RESULT ") :])
    print("| preset | patches | official load (s) | official generate (s) | audio shape | finite |")
    print("|---|---|---|---|---|---|")
    print(f"| {args.preset} | {result['patches']} | {result['load_s']} | {result['generate_s']} | "
          f"{result['audio_shape']} | {result['finite']} |")
    print(f"official strict load printed: {result['load_print']}")
    return 0 if result["finite"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
