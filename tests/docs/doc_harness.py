"""Extract the shell commands of the docs and check each one the way its spec says (see docs/contributing_docs.md).

A command is one logical line of a fenced ``bash`` block in README.md or docs/*.md: backslash continuations are
joined, ``# comments`` are stripped, blank and comment-only lines are skipped. Every command needs a spec in
``test_docs_commands.SPECS`` keyed by its normalised text:

* ``Run``: executed by bash, as written plus ``append``, in one shared sandbox folder (tiny stand-in inputs,
  the repo's code linked in). ``after`` names commands that must have run first (run once, cached).
* ``Parse``: needs a GPU, the network or released weights, so it is only parsed: argparse scripts get their
  exact arguments through their own parser (nothing runs after ``parse_args``), ``train.py`` composes with
  ``--cfg job``.
* ``Covered``: runs in another test; the named test must exist.
* ``MakeDryRun``: ``make -n <target>`` must succeed and print the named recipe.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import os
import re
import runpy
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
SHELL_LANGS = {"bash", "sh", "shell", "console"}
# Untagged/other fences must not look like commands: they would escape the harness.
COMMAND_START = re.compile(r"^\s*(python|make|sbatch|srun|export|scripts/|\./|bash|pip|git|mkdir|ls|cd)\b")


@dataclass(frozen=True)
class DocCommand:
    path: Path
    line: int  # 1-based line of the command's first physical line
    text: str  # as bash should run it (continuations joined, comment stripped)

    @property
    def key(self) -> str:
        return " ".join(self.text.split())

    @property
    def where(self) -> str:
        return f"{_rel(self.path)}:{self.line}"


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


@dataclass(frozen=True)
class Run:
    append: str = ""
    env: tuple[tuple[str, str], ...] = ()
    after: tuple[str, ...] = ()
    expect_rc: int = 0
    expect_output: str | None = None
    timeout: int = 300


@dataclass(frozen=True)
class Parse:
    reason: str


@dataclass(frozen=True)
class Covered:
    test: str  # "tests/x/test_y.py::test_name"
    reason: str


@dataclass(frozen=True)
class MakeDryRun:
    expect: str


Spec = Run | Parse | Covered | MakeDryRun


@dataclass
class Fence:
    path: Path
    line: int
    lang: str
    lines: list[str] = field(default_factory=list)


def fences(path: Path) -> list[Fence]:
    out, current = [], None
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = raw.strip()
        if current is None and stripped.startswith("```"):
            current = Fence(path, n, stripped[3:].strip().lower())
        elif current is not None and stripped.startswith("```"):
            out.append(current)
            current = None
        elif current is not None:
            current.lines.append(raw)
    if current is not None:
        raise ValueError(f"{path}:{current.line}: unclosed ``` fence")
    return out


def strip_comment(line: str) -> str:
    """Drop a trailing ``# comment`` (a ``#`` at a word start, outside quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def commands_in(fence: Fence) -> list[DocCommand]:
    out, buf, start = [], [], None
    for offset, raw in enumerate(fence.lines, 1):
        line = strip_comment(raw) if not buf else raw.rstrip()
        if not buf and not line.strip():
            continue
        if start is None:
            start = fence.line + offset
        if line.endswith("\\"):
            buf.append(line[:-1].rstrip())
            continue
        buf.append(strip_comment(line).strip() if len(buf) else line.strip())
        text = " ".join(part.strip() for part in buf if part.strip())
        out.append(DocCommand(fence.path, start, text))
        buf, start = [], None
    if buf:
        raise ValueError(f"{fence.path}:{fence.line}: a bash block ends with a line continuation")
    return out


def doc_commands(files: list[Path] = DOC_FILES) -> list[DocCommand]:
    return [c for f in files for fence in fences(f) if fence.lang in SHELL_LANGS for c in commands_in(fence)]


def untagged_command_fences(files: list[Path] = DOC_FILES) -> list[str]:
    """Fences that are not ``bash`` but start like a shell command (they would not be tested)."""
    bad = []
    for f in files:
        for fence in fences(f):
            if fence.lang in SHELL_LANGS or fence.lang in {"python", "yaml", "json", "text", "toml"}:
                continue
            first = next((line for line in fence.lines if line.strip()), "")
            if COMMAND_START.match(first):
                bad.append(f"{_rel(f)}:{fence.line} ({first.strip()[:60]})")
    return bad


# ----------------------------------------------------------------------------------------------------- checks


def named_test_exists(node_id: str) -> bool:
    """``tests/x.py::test_name`` (or ``::Class::test``) names a function defined in that file."""
    path, _, name = node_id.partition("::")
    file = REPO_ROOT / path
    if not file.is_file():
        return False
    tree = ast.parse(file.read_text(encoding="utf-8"))
    wanted = name.split("::")[-1].split("[")[0]
    return any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == wanted for n in ast.walk(tree))


class _Parsed(BaseException):
    """Raised right after ``parse_args`` succeeds, so nothing of the script runs beyond its argument parsing."""


@contextlib.contextmanager
def _stop_after_parse():
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        result = original(self, args, namespace)
        raise _Parsed(result)

    argparse.ArgumentParser.parse_args = parse_then_stop
    try:
        yield
    finally:
        argparse.ArgumentParser.parse_args = original


def run_python_in_process(text: str, stop_after_parse: bool = True) -> tuple[int, str]:
    """Run ``python <script|-m songbloom.x> args`` in this process: (exit code, stdout + stderr).

    With ``stop_after_parse`` nothing of the tool runs beyond its ``parse_args``; without it the tool runs
    (used for ``--help``, which exits inside ``parse_args`` anyway, saving a Python start under load).
    """
    argv = shlex.split(text)
    if argv[1] == "-m":
        target, args, runner = argv[2], argv[3:], "module"
    else:
        target, args, runner = str(REPO_ROOT / argv[1]), argv[2:], "path"
    old_argv, out = sys.argv, io.StringIO()
    sys.argv = [target, *args]
    guard = _stop_after_parse() if stop_after_parse else contextlib.nullcontext()
    try:
        with guard, contextlib.redirect_stderr(out), contextlib.redirect_stdout(out):
            if runner == "module":
                runpy.run_module(target, run_name="__main__", alter_sys=True)
            else:
                runpy.run_path(target, run_name="__main__")
        return 0, out.getvalue()
    except _Parsed:
        return 0, out.getvalue()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return code, out.getvalue() + ("" if isinstance(exc.code, int | None) else str(exc.code))
    finally:
        sys.argv = old_argv


def parse_python_command(text: str) -> str:
    """Give ``python <script|-m module> args`` to the tool's own argparse parser; return '' or the error."""
    argv = shlex.split(text)
    if not argv or argv[0] not in ("python", "python3"):
        return f"not a python command: {text}"
    if argv[1] == "-m":
        if not argv[2].startswith("songbloom"):
            return f"{text}: only our own tools are parsed in-process"
        target, args, runner = argv[2], argv[3:], "module"
    else:
        target, args, runner = str(REPO_ROOT / argv[1]), argv[2:], "path"
    old_argv, err = sys.argv, io.StringIO()
    sys.argv = [target, *args]
    try:
        with _stop_after_parse(), contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            if runner == "module":
                runpy.run_module(target, run_name="__main__", alter_sys=True)
            else:
                runpy.run_path(target, run_name="__main__")
        return f"{text}: finished without calling parse_args (nothing was checked)"
    except _Parsed:
        return ""
    except SystemExit as exc:
        return "" if exc.code in (0, None) else f"{text}: exit {exc.code}\n{err.getvalue()}"
    finally:
        sys.argv = old_argv


def sandbox_env(sandbox: Path, extra: tuple[tuple[str, str], ...] = ()) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(sandbox / ".stubs"), str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("SONGBLOOM_ROOT", None)
    env.update({"WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
    env.update(dict(extra))
    return env


def run_bash(text: str, cwd: Path, env: dict[str, str], timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", text],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def compose_train_command(text: str, sandbox: Path, env: dict[str, str]) -> str:
    """``python train.py [overrides]`` composed by Hydra (``--cfg job``): every group and key must exist."""
    proc = run_bash(f"{text} --cfg job", sandbox, env, timeout=120)
    if proc.returncode != 0:
        return f"{text} --cfg job: exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return ""


# ----------------------------------------------------------------------------------------------------- sandbox

LINKED = ("songbloom", "scripts", "conf", "train.py", "infer.py", "pyproject.toml")
KANA_SCORE = """<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="3.1"><part id="P1"><measure number="1">
{notes}
</measure></part></score-partwise>"""
SBATCH_STUB = """#!/bin/sh
# Stand-in for sbatch in the docs sandbox: the script must exist and pass a shell syntax check.
test -f "$1" && sh -n "$1" && echo "Submitted batch job 4242"
"""


def _tone(path: Path, seconds: float, seed: int, sr: int = 48000, channels: int = 1) -> None:
    import numpy as np
    import soundfile as sf

    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    x = 0.3 * np.sin(2 * np.pi * (180 + 40 * seed) * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.5 * t))
    x = x + 0.02 * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.stack([x] * channels, 1).astype(np.float32), sr)


def _score(syllables: list[str]) -> str:
    notes = []
    for i, s in enumerate(syllables, 1):
        notes.append(
            "<note><pitch><step>C</step><octave>4</octave></pitch><duration>1</duration>"
            f"<lyric><text>{s}</text></lyric></note>"
        )
        if i % 3 == 0:  # a rest ends a phrase
            notes.append("<note><rest/><duration>1</duration></note>")
    return KANA_SCORE.format(notes="\n".join(notes))


def write_tiny_release(folder: Path, name: str = "songbloom_full_150s") -> Path:
    """The release file set for the ``tiny`` preset (same 25 Hz latent frame rate as the release)."""
    import json

    import torch

    from songbloom.checkpoints.release_state import save_release_checkpoint
    from songbloom.checkpoints.release_yaml_writer import write_release_yaml
    from songbloom.config import SongBloomConfig
    from songbloom.models.songbloom import SongBloomModel
    from songbloom.models.vae import OobleckVAE, VAEConfig

    cfg = SongBloomConfig.from_name("tiny")
    vae_cfg = VAEConfig.tiny()
    torch.manual_seed(0)
    generator = SongBloomModel(cfg.model).state_dict()
    vae = OobleckVAE(vae_cfg).state_dict()
    write_release_yaml(cfg, folder, yaml_name=f"{name}.yaml", pt_name=f"{name}.pt")
    save_release_checkpoint(folder / f"{name}.pt", generator, vae)
    (folder / "stable_audio_1920_vae.json").write_text(json.dumps(vae_cfg.to_dict()))
    torch.save({"state_dict": vae}, folder / "autoencoder_music_dsp1920.ckpt")
    return folder


def build_sandbox(root: Path) -> Path:
    """The folder the docs' commands run in: the code linked in, tiny stand-ins for the inputs they name."""
    root.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        (root / name).symlink_to(REPO_ROOT / name)
    stubs = root / ".stubs"
    stubs.mkdir()
    (stubs / "sbatch").write_text(SBATCH_STUB)
    (stubs / "sbatch").chmod(0o755)
    # Lyrics to check, one per line (Japanese: its G2P loads in a second, English and Chinese take 5-25 s).
    (root / "lyrics.txt").write_text(
        "[intro] [intro] , [verse] かえるの うたが きこえて くるよ , [chorus] さくら さくら\n"
        "[verse] ゆきが ふる . あめが ふる , [outro] [outro]\n",
        encoding="utf-8",
    )
    # A folder of your own songs: audio with .lrc (timed) or .txt lyrics beside it.
    songs = root / "data" / "my_songs"
    _tone(songs / "first.wav", 9.0, 0, channels=2)
    (songs / "first.lrc").write_text("[00:01.00]hello my friend\n[00:04.00]we sing along\n[00:07.00]\n")
    _tone(songs / "second.flac", 6.0, 1, sr=44100)
    (songs / "second.txt").write_text("[verse]\nla la la\n[chorus]\nsing it again\n")
    # A jaCappella-shaped copy: <subset>/<song>/lead_vocal.wav + <song>_SVS.musicxml.
    ja = root / "data" / "jaCappella"
    # Three songs, as a small real set: one is held out for validation, and gradient accumulation is capped.
    lyrics = [list("かえるのうた"), list("さくらさくら"), list("ゆきがふるよ")]
    for i, (subset, syllables) in enumerate(zip(["jazz", "pops", "pops"], lyrics, strict=True)):
        song = ja / subset / f"song_{i}"
        _tone(song / "lead_vocal.wav", 4.0, i)
        _tone(song / "mixture.wav", 4.0, i + 10)
        (song / f"song_{i}_SVS.musicxml").write_text(_score(syllables), encoding="utf-8")
    # Tohoku Kiritan-shaped copy: wav/<name>.wav (96 kHz) + musicxml/<name>.xml.
    kiritan = root / "data" / "kiritan"
    for i, syllables in enumerate(lyrics[:2]):
        _tone(kiritan / "wav" / f"{i + 1:02d}.wav", 4.0, i, sr=96000)
        (kiritan / "musicxml").mkdir(parents=True, exist_ok=True)
        (kiritan / "musicxml" / f"{i + 1:02d}.xml").write_text(_score(syllables), encoding="utf-8")
    # The release folder (YAML, .pt, VAE json + checkpoint, vocabulary) with the release's file names around a tiny
    # random generator and VAE: the commands that read the release read this, strictly, as they would the real one.
    write_tiny_release(root / "ckpts" / "songbloom_full_150s")
    return root
