"""A catalogue of bad inputs across the entry points: each is reported with its file, its line or field, what is
wrong and what to do; no traceback is printed, and the good items of the same run still land.

One entry per cause: the command, a setup function (writes the bad input next to good ones and returns the argv,
the path and line/field the message must name, and how to see that the good items landed) and the phrases the
output must hold. Commands run in-process through each entry point's ``main`` (loaded from its script file, so the
same table runs on any checkout); stdout, stderr and the log are searched together. ``docs/troubleshooting.md``
lists every ``message`` of the table with its fix (tests/docs/test_troubleshooting.py checks it).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = {
    "infer": "infer.py",
    "train": "train.py",
    "preprocess": "scripts/preprocess.py",
    "evaluate": "scripts/evaluate.py",
    "export": "scripts/export.py",
    "convert_folder": "scripts/convert_folder.py",
    "convert_kiritan": "scripts/convert_kiritan.py",
    "text": "songbloom/text/__main__.py",
    "sketch": "songbloom/sketch/__main__.py",
}
INFER_FAST = ["--device", "cpu", "--max-duration", "1.0", "--n-samples", "1", "--seed", "0", "--output-format", "wav"]
GOOD_LYRICS = "[verse] n i h ao , [chorus] w o"


@dataclass
class Case:
    """What a setup returns: the command line, what the message must name, and how to see the good items land."""

    argv: list[str]
    where: list[str]  # the file (path) and line or field the message must name
    landed: Callable[[], bool] | None = None  # None: the cause is fatal for the whole command (nothing can land)
    env: dict[str, str] = field(default_factory=dict)
    rc: str = "nonzero"  # "zero" when the good items landed and no --strict was given


@dataclass(frozen=True)
class Cause:
    id: str
    command: str  # a key of SCRIPTS
    setup: Callable[[Path, dict], Case]
    message: str  # a phrase specific to the cause (also listed on docs/troubleshooting.md)
    fix: str  # the suggested fix, as printed


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict:
    """A tiny release dir (+ .pt), an export dir, prompt audio and a tiny MuQ with a codebook naming it."""
    from songbloom.checkpoints.release_state import save_release_checkpoint
    from songbloom.checkpoints.release_yaml_writer import write_release_yaml
    from songbloom.config import SongBloomConfig
    from songbloom.models.songbloom import SongBloomModel
    from songbloom.models.vae import OobleckVAE, VAEConfig

    root = tmp_path_factory.mktemp("catalogue_assets")
    rel = root / "release"
    rel.mkdir()
    cfg = SongBloomConfig.from_name("tiny")
    write_release_yaml(cfg, rel, yaml_name="tiny_song.yaml", pt_name="tiny_song.pt")
    torch.manual_seed(0)
    model = SongBloomModel(cfg.model)
    with torch.no_grad():
        model.skeleton_classifier[-1].bias[cfg.model.eos_id] = -1e4
    vae_cfg = VAEConfig.tiny()
    vae = OobleckVAE(vae_cfg)
    save_release_checkpoint(rel / "tiny_song.pt", model.state_dict(), vae.state_dict())
    vae_cfg.to_json(rel / "stable_audio_1920_vae.json")
    torch.save({"state_dict": vae.state_dict()}, rel / "autoencoder_music_dsp1920.ckpt")
    sr = 44100
    wav = (0.1 * np.sin(np.linspace(0, 2000, sr * 2))).astype(np.float32)
    sf.write(root / "prompt.wav", np.stack([wav, -wav], 1), sr)
    sf.write(root / "prompt_8k.wav", wav[::5][:16000], 8000)
    return {"root": root, "release": rel, "model": model, "cfg": cfg, "vae": vae, "prompt": root / "prompt.wav"}


@pytest.fixture(scope="module")
def export_dir(assets) -> Path:
    from songbloom.checkpoints.formats.merged import export_merged

    out = assets["root"] / "export"
    export_merged(assets["model"], assets["cfg"], out, vae=assets["vae"])
    return out


@pytest.fixture(scope="module")
def muq_codebook(tmp_path_factory) -> dict:
    from songbloom.sketch import build_tiny_muq
    from songbloom.sketch.artifact import SketchCodebook, build_metadata, save_codebook
    from songbloom.sketch.muq_backbone import muq_fingerprint

    root = tmp_path_factory.mktemp("catalogue_muq")
    muq = build_tiny_muq(0, root / "muq")
    centers, mean, std = torch.randn(8, 64), torch.zeros(64), torch.ones(64)
    meta = build_metadata(centers=centers, mean=mean, std=std, muq_model_id=str(root / "muq"),
                          muq_fingerprint=muq_fingerprint(muq), muq_layer=-1, muq_licence="CC-BY-NC-4.0",
                          feature_normalisation="none")
    path = save_codebook(root / "codebook.safetensors", SketchCodebook(centers, mean, std, meta))
    clip = root / "clip.wav"
    sf.write(clip, (0.1 * np.sin(np.linspace(0, 3000, 24000))).astype(np.float32), 24000)
    return {"codebook": path, "clip": clip, "muq_dir": root / "muq"}


# ------------------------------------------------------------------------------------------------ helpers
def _jsonl(path: Path, lines: list[bytes | str | dict]) -> Path:
    raw = [ln if isinstance(ln, bytes) else (json.dumps(ln) if isinstance(ln, dict) else ln).encode() for ln in lines]
    path.write_bytes(b"\n".join(raw) + b"\n")
    return path


def _good_item(a: dict, idx: str = "good") -> dict:
    return {"idx": idx, "lyrics": GOOD_LYRICS, "prompt_wav": str(a["prompt"])}


def _damage(src: Path, dst: Path, how: str) -> Path:
    data = src.read_bytes()
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(data[: len(data) // 2] if how == "truncate" else os.urandom(4096))
    return dst


def _infer_line(bad_line: bytes | str | dict, *extra: str, rc: str = "zero"):
    """Setup: a JSONL with one good item (line 1) and the bad line (line 2) run against the tiny release."""

    def setup(tmp: Path, a: dict) -> Case:
        jsonl = _jsonl(tmp / "jobs.jsonl", [_good_item(a), bad_line])
        out = tmp / "out"
        argv = ["--input-jsonl", str(jsonl), "--ckpt-path", str(a["release"]), "--output-dir", str(out),
                *INFER_FAST, *extra]
        return Case(argv, [f"{jsonl}:2"], landed=lambda: (out / "good_s0.wav").is_file(), rc=rc)

    return setup


def _infer_model(make: Callable[[Path, dict], Path]):
    """Setup: a good JSONL run against a bad model path (fatal: nothing can land, nothing is written)."""

    def setup(tmp: Path, a: dict) -> Case:
        bad = make(tmp, a)
        jsonl = _jsonl(tmp / "jobs.jsonl", [_good_item(a)])
        out = tmp / "out"
        argv = ["--input-jsonl", str(jsonl), "--ckpt-path", str(bad), "--output-dir", str(out), *INFER_FAST]
        return Case(argv, [str(bad)])

    return setup


def _export(make: Callable[[Path, dict], Path]):
    def setup(tmp: Path, a: dict) -> Case:
        bad = make(tmp, a)
        return Case(["export", str(bad), "--out", str(tmp / "exported")], [str(bad)])

    return setup


def _random_ckpt(tmp: Path, a: dict) -> Path:
    return _damage(a["release"] / "tiny_song.pt", tmp / "last.ckpt", "random")


def _truncated_pt(tmp: Path, a: dict) -> Path:
    rel = tmp / "release"
    rel.mkdir()
    for f in a["release"].iterdir():
        (rel / f.name).write_bytes(f.read_bytes())
    return _damage(a["release"] / "tiny_song.pt", rel / "tiny_song.pt", "truncate")


def _truncated_generator(tmp: Path, a: dict) -> Path:
    src = a["export"]
    dst = tmp / "export"
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    _damage(src / "generator.safetensors", dst / "generator.safetensors", "truncate")
    return dst


def _missing(tmp: Path, a: dict) -> Path:
    return tmp / "no_such_checkpoint.pt"


# ------------------------------------------------------------------------------------------------ text, sketch
def _text_file(tmp: Path, a: dict) -> Case:
    f = tmp / "lyrics.txt"
    f.write_bytes(b"[verse] hello world\n\xff\xfe broken\n[chorus] la la\n")
    return Case([str(f)], [f"{f}:2"], landed=lambda: True, rc="nonzero")


def _text_missing(tmp: Path, a: dict) -> Case:
    return Case([str(tmp / "missing.txt")], [str(tmp / "missing.txt")])


def _sketch_manifest(bad_line: bytes | str | dict):
    def setup(tmp: Path, a: dict) -> Case:
        m = a["muq"]
        manifest = _jsonl(tmp / "clips.jsonl", [{"audio_path": str(m["clip"])}, bad_line])
        out = tmp / "tok"
        argv = ["tokenize", "--codebook", str(m["codebook"]), "--manifest", str(manifest), "--out-dir", str(out)]
        return Case(argv, [f"{manifest}:2"], landed=lambda: any(out.glob("*.sketch.safetensors")), rc="zero")

    return setup


def _sketch_unreadable_clip(tmp: Path, a: dict) -> Case:
    m = a["muq"]
    bad = tmp / "not_audio.wav"
    bad.write_text("not audio")
    out = tmp / "tok"
    argv = ["tokenize", "--codebook", str(m["codebook"]), str(m["clip"]), str(bad), "--out-dir", str(out), "--strict"]
    return Case(argv, [str(bad)], landed=lambda: any(out.glob("*.sketch.safetensors")))


def _sketch_codebook(make: Callable[[Path, dict], Path]):
    def setup(tmp: Path, a: dict) -> Case:
        bad = make(tmp, a)
        return Case(["tokenize", "--codebook", str(bad), str(a["muq"]["clip"]), "--out-dir", str(tmp / "tok")],
                    [str(bad)])

    return setup


def _pickled_rvq_muq(tmp: Path, a: dict) -> Path:
    """A codebook naming a MuQ folder whose config points rvq_ckpt_path at a pickle."""
    import shutil

    from songbloom.sketch.artifact import SketchCodebook, build_metadata, save_codebook

    muq = tmp / "muq"
    shutil.copytree(a["muq"]["muq_dir"], muq)
    (muq / "rvq.pt").write_bytes(b"\x80\x02}q\x00.")
    cfg = json.loads((muq / "config.json").read_text())
    cfg.update(use_rvq_target=True, rvq_ckpt_path=str(muq / "rvq.pt"))
    (muq / "config.json").write_text(json.dumps(cfg))
    c, mean, std = torch.randn(8, 64), torch.zeros(64), torch.ones(64)
    meta = build_metadata(centers=c, mean=mean, std=std, muq_model_id=str(muq), muq_fingerprint="x", muq_layer=-1,
                          muq_licence="CC-BY-NC-4.0", feature_normalisation="none")
    save_codebook(tmp / "codebook.safetensors", SketchCodebook(c, mean, std, meta))
    return muq / "config.json"


def _sketch_pickled_rvq(tmp: Path, a: dict) -> Case:
    config = _pickled_rvq_muq(tmp, a)
    argv = ["tokenize", "--codebook", str(tmp / "codebook.safetensors"), str(a["muq"]["clip"]), "--out-dir",
            str(tmp / "tok")]
    return Case(argv, [str(config), "rvq_ckpt_path"])


def _sketch_unsafe_env(tmp: Path, a: dict) -> Case:
    m = a["muq"]
    argv = ["tokenize", "--codebook", str(m["codebook"]), str(m["clip"]), "--out-dir", str(tmp / "tok")]
    return Case(argv, ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"], env={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"})


# ------------------------------------------------------------------------------------------------ evaluate
def _songs(tmp: Path, *bad: str) -> Path:
    d = tmp / "songs"
    d.mkdir(exist_ok=True)
    sf.write(d / "good.wav", (0.1 * np.sin(np.linspace(0, 3000, 24000))).astype(np.float32), 24000)
    for name in bad:
        (d / name).write_text("not audio")
    return d


def _evaluate(*extra: str, strict: bool = False):
    def setup(tmp: Path, a: dict) -> Case:
        songs = _songs(tmp, "broken.wav")
        reference = tmp / "reference"  # something to evaluate the good clip against (paired similarity, FAD)
        reference.mkdir()
        sf.write(reference / "good.wav", (0.1 * np.sin(np.linspace(0, 2000, 24000))).astype(np.float32), 24000)
        out = tmp / "report"
        argv = ["--out", str(out), "--audio", f"a={songs}", "--reference", str(reference), "--embedder", "mel",
                *extra]
        return Case(argv + (["--strict"] if strict else []), [str(songs / "broken.wav")],
                    landed=lambda: (out / "report.json").is_file(), rc="nonzero" if strict else "zero")

    return setup


def _evaluate_prompts(tmp: Path, a: dict) -> Case:
    songs = _songs(tmp)
    prompts = _jsonl(tmp / "prompts.jsonl", [{"name": "good", "text": "pop"}, b"\xff\xfe{}"])
    argv = ["--out", str(tmp / "report"), "--audio", f"a={songs}", "--embedder", "mel", "--prompts", str(prompts)]
    return Case(argv, [f"{prompts}:2"])


def _evaluate_missing_folder(tmp: Path, a: dict) -> Case:
    return Case(["--out", str(tmp / "r"), "--audio", f"a={tmp / 'nowhere'}", "--embedder", "mel"],
                [str(tmp / "nowhere")])


def _evaluate_no_audio(tmp: Path, a: dict) -> Case:
    d = tmp / "songs"
    d.mkdir()
    (d / "x.wav").write_text("not audio")
    return Case(["--out", str(tmp / "r"), "--audio", f"a={d}", "--embedder", "mel"], [str(d)])


def _evaluate_mulan_remote_code(tmp: Path, a: dict) -> Case:
    tower = tmp / "audio-tower"
    tower.mkdir()
    (tower / "config.json").write_text(json.dumps({"model_type": "x", "auto_map": {"AutoModel": "m.M"}}))
    mulan = tmp / "mulan"
    mulan.mkdir()
    (mulan / "config.json").write_text(json.dumps({"audio_model": {"name": str(tower)},
                                                   "text_model": {"name": "xlm-roberta-base"}}))
    argv = ["--out", str(tmp / "r"), "--audio", f"a={_songs(tmp)}", "--embedder", "mel", "--mulan", str(mulan)]
    return Case(argv, [str(mulan / "config.json"), "audio_model.name"])


# ------------------------------------------------------------------------------------------------ converters
def _convert_folder(files: dict[str, bytes], where: str, strict: bool = False):
    def setup(tmp: Path, a: dict) -> Case:
        d = tmp / "corpus"
        d.mkdir()
        sf.write(d / "good.wav", np.zeros(24000, dtype=np.float32), 24000)
        (d / "good.txt").write_text("[verse] hello", encoding="utf-8")
        for name, data in files.items():
            if name.endswith(".wav"):
                sf.write(d / name, np.zeros(24000, dtype=np.float32), 24000)
            else:
                (d / name).write_bytes(data)
        out = tmp / "manifest.jsonl"

        def landed() -> bool:
            return out.is_file() and '"good"' in out.read_text(encoding="utf-8")

        return Case([str(d), "--out", str(out)] + (["--strict"] if strict else []), [str(d / where)], landed=landed,
                    rc="nonzero" if strict else "zero")

    return setup


def _convert_nothing(tmp: Path, a: dict) -> Case:
    d = tmp / "corpus"
    d.mkdir()
    sf.write(d / "song.wav", np.zeros(24000, dtype=np.float32), 24000)
    return Case([str(d), "--out", str(tmp / "m.jsonl")], [str(d / "song.wav")])


def _convert_missing(command_dir: str):
    def setup(tmp: Path, a: dict) -> Case:
        return Case([str(tmp / command_dir), "--out", str(tmp / "m.jsonl")], [str(tmp / command_dir)])

    return setup


# ------------------------------------------------------------------------------------------------ preprocess, train
def _preprocess_random_vae(tmp: Path, a: dict) -> Case:
    bad = _damage(a["release"] / "autoencoder_music_dsp1920.ckpt", tmp / "vae.ckpt", "random")
    manifest = _jsonl(tmp / "m.jsonl", [{"idx": "s", "audio_path": str(a["prompt"]), "lyrics": GOOD_LYRICS}])
    argv = [str(manifest), "--out", str(tmp / "shards"), "--vae-config",
            str(a["release"] / "stable_audio_1920_vae.json"), "--vae-ckpt", str(bad)]
    return Case(argv, [str(bad)])


def _train(*overrides: str, where: list[str]):
    def setup(tmp: Path, a: dict) -> Case:
        return Case([f"paths.root_dir={tmp}", "experiment=demo", *overrides], where)

    return setup


CATALOGUE: list[Cause] = [
    # infer.py: bad JSONL lines (the good line 1 still generates)
    Cause("infer-non-utf8-line", "infer", _infer_line(b"\xff\xfe{}"), "not UTF-8 text", "save the file as UTF-8"),
    Cause("infer-invalid-json", "infer", _infer_line("{not json"), "not valid JSON", "one JSON object per line"),
    Cause("infer-not-an-object", "infer", _infer_line("[1, 2]"), "expected a JSON object",
          "one {idx, lyrics, prompt_wav} object per line"),
    Cause("infer-missing-field", "infer", _infer_line({"idx": "x", "prompt_wav": "p.wav"}),
          "missing or empty field(s)", "give every line idx, lyrics and prompt_wav"),
    Cause("infer-wrong-type", "infer", _infer_line({"idx": "x", "lyrics": 5, "prompt_wav": "p.wav"}),
          "idx must be a string or integer", "lyrics and prompt_wav strings"),
    Cause("infer-idx-path", "infer", _infer_line({"idx": "a/b", "lyrics": GOOD_LYRICS, "prompt_wav": "p.wav"}),
          "idx is used as a file name", "no path separators"),
    Cause("infer-duplicate-idx", "infer", _infer_line({"idx": "good", "lyrics": GOOD_LYRICS, "prompt_wav": "p.wav"}),
          "duplicate idx", "give each line its own idx"),
    Cause("infer-missing-prompt", "infer", _infer_line({"idx": "x", "lyrics": GOOD_LYRICS, "prompt_wav": "nope.wav"}),
          "not found (looked in", "fix the path"),
    Cause("infer-unknown-tag", "infer",
          _infer_line({"idx": "rap", "lyrics": "[rap] yo , [verse] la", "prompt_wav": "prompt.wav"}),
          "unknown structure tag", "use one of [verse]"),
    Cause("infer-tagless-lyrics", "infer",
          _infer_line({"idx": "plain", "lyrics": "just some words", "prompt_wav": "prompt.wav"}),
          "text before the first structure tag", "start with e.g. [verse]"),
    Cause("infer-lyrics-policy-error", "infer",
          _infer_line({"idx": "rap", "lyrics": "[rap] yo", "prompt_wav": "prompt.wav"}, "--lyrics-policy", "error",
                      "--strict", rc="nonzero"),
          "unknown structure tag", "--lyrics-policy warn"),
    Cause("infer-low-sample-rate-prompt", "infer",
          _infer_line({"idx": "lofi", "lyrics": GOOD_LYRICS, "prompt_wav": "prompt_8k.wav"}),
          "low sample rate (8000 Hz)", "use a recording at 44.1 kHz or more"),
    Cause("infer-unreadable-prompt", "infer",
          _infer_line({"idx": "bad", "lyrics": GOOD_LYRICS, "prompt_wav": "catalogue.jsonl"}),
          "cannot read audio", "convert it to WAV or FLAC"),
    Cause("infer-strict-skipped", "infer", _infer_line("{bad", "--strict", rc="nonzero"), "not valid JSON",
          "one JSON object per line"),
    # infer.py: bad model files (fatal: nothing can generate)
    Cause("infer-random-bytes-ckpt", "infer", _infer_model(_random_ckpt), "damaged file", "copy or download it again"),
    Cause("infer-truncated-release-pt", "infer", _infer_model(_truncated_pt), "damaged file", "copy or download"),
    Cause("infer-truncated-generator-safetensors", "infer", _infer_model(_truncated_generator),
          "describes", "copy or download it again"),
    Cause("infer-missing-checkpoint", "infer", _infer_model(_missing), "does not exist", "check the path"),
    # scripts/export.py
    Cause("export-random-bytes-ckpt", "export", _export(_random_ckpt), "damaged file", "copy or download it again"),
    Cause("export-truncated-release-pt", "export", _export(_truncated_pt), "damaged file", "copy or download"),
    Cause("export-truncated-generator-safetensors", "export", _export(_truncated_generator), "damaged file",
          "copy or download it again"),
    Cause("export-missing-checkpoint", "export", _export(_missing), "does not exist", "check the path"),
    # python -m songbloom.text
    Cause("text-non-utf8-line", "text", _text_file, "not UTF-8 text", "save the file as UTF-8"),
    Cause("text-missing-file", "text", _text_missing, "no such file", "one lyric per line"),
    # python -m songbloom.sketch
    Cause("sketch-manifest-non-utf8-line", "sketch", _sketch_manifest(b"\xff\xfe{}"), "not UTF-8 text",
          "save the manifest as UTF-8"),
    Cause("sketch-manifest-invalid-json", "sketch", _sketch_manifest("{oops"), "invalid JSON",
          "one JSON object per line"),
    Cause("sketch-manifest-no-audio-path", "sketch", _sketch_manifest({"path": "x.wav"}),
          "missing string field 'audio_path'", "give each line an audio file path"),
    Cause("sketch-unreadable-clip", "sketch", _sketch_unreadable_clip, "cannot read audio",
          "convert it to WAV or FLAC"),
    Cause("sketch-missing-codebook", "sketch", _sketch_codebook(lambda t, a: t / "none.safetensors"),
          "not found", "train one with"),
    Cause("sketch-damaged-codebook", "sketch",
          _sketch_codebook(lambda t, a: _damage(a["muq"]["codebook"], t / "cb.safetensors", "random")),
          "damaged file", "copy or download it again"),
    Cause("sketch-muq-pickled-rvq", "sketch", _sketch_pickled_rvq, "a pickled checkpoint MuQ would unpickle",
          '"rvq_ckpt_path": null'),
    Cause("sketch-unsafe-torch-env", "sketch", _sketch_unsafe_env, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD is set",
          "unset TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"),
    # scripts/evaluate.py
    Cause("evaluate-unreadable-clip", "evaluate", _evaluate(), "unreadable", "SKIPPED"),
    Cause("evaluate-unreadable-clip-strict", "evaluate", _evaluate(strict=True), "unreadable", "SKIPPED"),
    Cause("evaluate-prompts-non-utf8", "evaluate", _evaluate_prompts, "not UTF-8 text", "save the file as UTF-8"),
    Cause("evaluate-missing-audio-folder", "evaluate", _evaluate_missing_folder, "audio folder",
          "give NAME=FOLDER of generated songs"),
    Cause("evaluate-no-readable-audio", "evaluate", _evaluate_no_audio, "no readable audio", "convert"),
    Cause("evaluate-mulan-remote-code", "evaluate", _evaluate_mulan_remote_code, "trust_remote_code=True",
          "point 'audio_model.name' at a MuQ folder"),
    # converters
    Cause("convert-folder-no-lyrics", "convert_folder", _convert_folder({"bare.wav": b""}, "bare.wav"),
          "no .lrc or .txt lyrics beside it", "add bare.lrc or bare.txt"),
    Cause("convert-folder-non-utf8-lyrics", "convert_folder",
          _convert_folder({"enc.wav": b"", "enc.txt": b"[verse] \xff\xfe"}, "enc.txt"),
          "not UTF-8 text", "save it as UTF-8"),
    Cause("convert-folder-strict", "convert_folder", _convert_folder({"bare.wav": b""}, "bare.wav", strict=True),
          "no .lrc or .txt lyrics beside it", "add bare.lrc or bare.txt"),
    Cause("convert-folder-nothing-landed", "convert_folder", _convert_nothing, "no songs landed",
          "fix the inputs listed above"),
    Cause("convert-folder-missing-folder", "convert_folder", _convert_missing("nowhere"), "no such folder",
          "give the folder holding the audio"),
    Cause("convert-kiritan-missing-root", "convert_kiritan", _convert_missing("kiritan"), "no such folder",
          "give the Kiritan root"),
    # scripts/preprocess.py
    Cause("preprocess-random-bytes-vae-ckpt", "preprocess", _preprocess_random_vae, "damaged file",
          "copy or download it again"),
    # train.py
    Cause("train-misspelt-key", "train", _train("trainer.max_stepz=3", where=["trainer.max_stepz"]),
          "Could not override", "+trainer.max_stepz=3"),
    Cause("train-missing-init-export", "train",
          _train("init.source=export", "init.export_path=/no/such/generator.safetensors",
                 where=["init.export_path", "/no/such/generator.safetensors"]),
          "does not exist", "an exported generator"),
]


# ------------------------------------------------------------------------------------------------ the runner
def _entry_point(command: str):
    path = REPO_ROOT / SCRIPTS[command]
    spec = importlib.util.spec_from_file_location(f"_catalogue_{command}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _run(command: str, argv: list[str]) -> tuple[object, str]:
    """(exit code or the uncaught exception, the traceback text if any)."""
    import traceback

    main = _entry_point(command)
    saved = sys.argv
    sys.argv = [SCRIPTS[command], *argv]
    try:
        return (main() if command == "train" else main(argv)), ""
    except SystemExit as e:
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
            return 1, ""
        return e.code, ""
    except Exception as e:  # noqa: BLE001 - an uncaught error is the failure this test looks for
        return e, traceback.format_exc()
    finally:
        sys.argv = saved
        logging.getLogger().setLevel(logging.WARNING)


@pytest.fixture
def all_assets(request, assets) -> dict:
    a = dict(assets)
    if "export" in request.node.name or "generator" in request.node.name:
        a["export"] = request.getfixturevalue("export_dir")
    if request.node.callspec.params["cause"].command == "sketch":
        a["muq"] = request.getfixturevalue("muq_codebook")
    return a


@pytest.mark.parametrize("cause", CATALOGUE, ids=[c.id for c in CATALOGUE])
def test_bad_input_is_reported_clearly(cause: Cause, all_assets, tmp_path, capsys, caplog, monkeypatch):
    caplog.set_level(logging.INFO)
    for name in ("prompt.wav", "prompt_8k.wav"):
        (tmp_path / name).write_bytes((all_assets["root"] / name).read_bytes())
    (tmp_path / "catalogue.jsonl").write_text("not audio")
    monkeypatch.chdir(tmp_path)
    case = cause.setup(tmp_path, all_assets)
    for k, v in case.env.items():
        monkeypatch.setenv(k, v)
    rc, trace = _run(cause.command, case.argv)
    captured = capsys.readouterr()
    output = captured.out + captured.err + caplog.text
    assert not trace and "Traceback (most recent call last)" not in output, f"a traceback, not a message:\n{trace}"
    for phrase in [*case.where, cause.message, cause.fix]:
        assert phrase in output, f"{cause.id}: {phrase!r} not in the output:\n{output[-4000:]}"
    if case.landed is not None:
        assert case.landed(), f"{cause.id}: the good items did not land:\n{output[-4000:]}"
    if case.rc == "zero":
        assert rc in (0, None), f"{cause.id}: exit {rc!r} although the good items landed"
    else:
        assert rc not in (0, None), f"{cause.id}: exit 0 although items were skipped (--strict) or nothing ran"


def test_catalogue_is_large_and_distinct():
    assert len(CATALOGUE) >= 40
    assert len({c.id for c in CATALOGUE}) == len(CATALOGUE)
    commands = {c.command for c in CATALOGUE}
    assert commands >= {"infer", "train", "preprocess", "evaluate", "convert_folder", "text", "sketch", "export"}
