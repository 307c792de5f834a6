"""The files of a self-distillation corpus: one safetensors file per song, a marker per skipped song, reading back.

``<out>/songs/<name>.safetensors`` holds ``sketch_ids`` (int64 [F], the ids the base model sampled), ``latents``
(float32 [C, F]), ``features`` ([L, F, D], MuQ layers of the decoded audio, frame-aligned), optionally ``audio``
(float32 [channels, T], the decoded song) and ``prompt_latents`` (float32 [C, F_prompt], the prompt draw the song
was conditioned on). Its JSON header (metadata key ``songbloom_corpus_song``) names the song (name, index, seed,
lyric ids, prompt), how it was made (sampling, base model, MuQ fingerprint and layers, plan hash) and its frame
counts, plus ``content_sha256`` over every tensor, so a resume can tell an intact file from a damaged one.

A song whose EOS came in the first patch has no frames; it gets ``<out>/songs/<name>.skipped.json`` instead, so it is
counted (and not generated again), never silently dropped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from songbloom.checkpoints.safe_load import load_safetensors, safetensors_metadata
from songbloom.sketch.alignment import FRAME_RATE
from songbloom.sketch.recovery.corpus_plan import CORPUS_VERSION, CorpusItem, CorpusPlan, read_plan
from songbloom.utils.atomic import atomic_write, atomic_write_json

logger = logging.getLogger(__name__)

SONGS_DIR = "songs"
REPORTS_DIR = "reports"
SONG_FORMAT = "songbloom-sketch-corpus-song"
SKIP_FORMAT = "songbloom-sketch-corpus-skipped-song"
HEADER_KEY = "songbloom_corpus_song"
SONG_TENSORS = ("sketch_ids", "latents", "features")  # always present; "audio", "prompt_latents" optional
_REPORT_NAME = re.compile(r"^task-(\d+)-of-(\d+)\.json$")


class CorpusFileError(ValueError):
    """A song file that cannot be used: damaged, cut short, or not from this corpus's plan."""


def song_path(out_dir: str | os.PathLike, name: str) -> Path:
    return Path(out_dir) / SONGS_DIR / f"{name}.safetensors"


def skip_path(out_dir: str | os.PathLike, name: str) -> Path:
    return Path(out_dir) / SONGS_DIR / f"{name}.skipped.json"


def report_path(out_dir: str | os.PathLike, task_index: int, num_tasks: int) -> Path:
    return Path(out_dir) / REPORTS_DIR / f"task-{task_index:04d}-of-{num_tasks:04d}.json"


# ------------------------------------------------------------------------------------------------ writing
def tensors_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes (sorted by name)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}:".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def write_song(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor], header: Mapping[str, Any]) -> Path:
    """Write one song file atomically (a kill leaves the old file or none, never half a file)."""
    from safetensors.torch import save

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    full = {**header, "content_sha256": tensors_sha256(tensors)}
    data = save(tensors, metadata={HEADER_KEY: json.dumps(full, ensure_ascii=False)})
    return atomic_write(path, lambda f: f.write(data), binary=True)


def write_skip_marker(path: str | os.PathLike, header: Mapping[str, Any]) -> Path:
    return atomic_write_json(path, {"format": SKIP_FORMAT, "version": CORPUS_VERSION, **header})


def remove_partial_files(out_dir: str | os.PathLike, names: Sequence[str]) -> int:
    """Delete temp files a killed run left for these songs; returns how many."""
    songs = Path(out_dir) / SONGS_DIR
    removed = 0
    for name in names:
        for tmp in songs.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


# ------------------------------------------------------------------------------------------------ reading
def read_song_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of a song file, after the cheap size check; :class:`CorpusFileError` when unusable."""
    try:
        meta = safetensors_metadata(path)
        header = json.loads(meta[HEADER_KEY])
    except FileNotFoundError:
        raise
    except Exception as e:  # DamagedFileError, a foreign safetensors file, bad JSON: all mean "redo it"
        raise CorpusFileError(f"{path}: not a readable corpus song file ({e})") from e
    if not isinstance(header, dict) or header.get("format") != SONG_FORMAT:
        raise CorpusFileError(f"{path}: not a corpus song file (format {header.get('format')!r})")
    if header.get("version") != CORPUS_VERSION:
        raise CorpusFileError(f"{path}: corpus song version {header.get('version')!r}, expected {CORPUS_VERSION}")
    return header


def read_song(path: str | os.PathLike, *, verify: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, header) of a song file; ``verify`` recomputes ``content_sha256`` (a bit flip anywhere fails)."""
    header = read_song_header(path)
    try:
        tensors = load_safetensors(path)
    except Exception as e:
        raise CorpusFileError(f"{path}: cannot read its tensors ({e})") from e
    missing = [k for k in SONG_TENSORS if k not in tensors]
    if missing:
        raise CorpusFileError(f"{path}: tensors {missing} are missing")
    if verify and tensors_sha256(tensors) != header.get("content_sha256"):
        raise CorpusFileError(f"{path}: its tensors do not match the content_sha256 of its header (damaged)")
    return tensors, header


def _matches(header: Mapping[str, Any], item: CorpusItem, plan_sha256: str) -> str | None:
    for key, want in (("name", item.name), ("index", item.index), ("seed", item.seed), ("plan_sha256", plan_sha256)):
        if header.get(key) != want:
            return f"{key} is {header.get(key)!r}, the plan says {want!r}"
    return None


def song_state(
    out_dir: str | os.PathLike, item: CorpusItem, plan_sha256: str, *, verify: bool
) -> tuple[str, str, dict[str, Any] | None]:
    """("done" | "skipped" | "missing" | "damaged", detail, header or marker) of one planned song.

    ``verify`` reads the whole file and checks its content hash; otherwise only the header and the file size.
    """
    path = song_path(out_dir, item.name)
    if path.exists():
        try:
            header = read_song(path)[1] if verify else read_song_header(path)
        except (CorpusFileError, FileNotFoundError) as e:
            return "damaged", str(e), None
        why = _matches(header, item, plan_sha256)
        return ("damaged", f"{path}: {why}", None) if why else ("done", str(path), header)
    marker = skip_path(out_dir, item.name)
    if marker.exists():
        try:
            header = json.loads(marker.read_text(encoding="utf-8"))
            why = _matches(header, item, plan_sha256) if header.get("format") == SKIP_FORMAT else "not a marker"
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as e:
            why = f"unreadable ({e})"
        return ("damaged", f"{marker}: {why}", None) if why else ("skipped", str(header.get("reason")), header)
    return "missing", str(path), None


# ------------------------------------------------------------------------------------------------ status
@dataclass
class TaskStatus:
    """One array task's share of the corpus."""

    task: int
    planned: int = 0
    done: int = 0
    skipped: int = 0
    frames: int = 0
    missing: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.missing and not self.damaged


@dataclass
class CorpusStatus:
    """How far a corpus is: per task and in total. ``skipped`` songs (EOS in the first patch) count as finished."""

    out_dir: str
    num_tasks: int
    tasks: dict[int, TaskStatus]
    problems: list[str]  # job-file lines that give no songs

    @property
    def planned(self) -> int:
        return sum(t.planned for t in self.tasks.values())

    @property
    def done(self) -> int:
        return sum(t.done for t in self.tasks.values())

    @property
    def skipped(self) -> int:
        return sum(t.skipped for t in self.tasks.values())

    @property
    def missing(self) -> list[str]:
        return [n for t in self.tasks.values() for n in t.missing]

    @property
    def damaged(self) -> list[str]:
        return [n for t in self.tasks.values() for n in t.damaged]

    @property
    def frames(self) -> int:
        return sum(t.frames for t in self.tasks.values())

    @property
    def seconds(self) -> float:
        return self.frames / FRAME_RATE

    @property
    def complete(self) -> bool:
        return all(t.complete for t in self.tasks.values())

    def summary(self) -> str:
        lines = [
            f"{self.out_dir}: {self.done}/{self.planned} songs done ({self.seconds / 3600:.2f} h, {self.frames} "
            f"frames), {self.skipped} skipped (EOS in the first patch), {len(self.missing)} missing, "
            f"{len(self.damaged)} damaged; {len(self.problems)} job-file line(s) gave no songs"
        ]
        for t in self.tasks.values():
            if not t.complete:
                lines.append(
                    f"  task {t.task}/{self.num_tasks}: {t.done + t.skipped}/{t.planned} finished; "
                    f"missing {t.missing[:5]}{' ...' if len(t.missing) > 5 else ''}"
                    + (f"; damaged {t.damaged[:5]}" if t.damaged else "")
                )
        return "\n".join(lines)


def _recorded_num_tasks(out_dir: Path) -> int:
    """The task count of the latest task report (1 when none)."""
    reports = [
        (p.stat().st_mtime, int(m.group(2)))
        for p in (out_dir / REPORTS_DIR).glob("task-*-of-*.json")
        if (m := _REPORT_NAME.match(p.name))
    ]
    return max(reports)[1] if reports else 1


def corpus_status(out_dir: str | os.PathLike, num_tasks: int | None = None, *, verify: bool = False) -> CorpusStatus:
    """Done / skipped / missing / damaged songs per array task (``num_tasks`` default: that of the latest run).

    ``verify`` reads every file and checks its content hash (slow on a big corpus); the default checks headers and
    file sizes only.
    """
    out = Path(out_dir)
    plan = read_plan(out)
    n = _recorded_num_tasks(out) if num_tasks is None else int(num_tasks)
    if n < 1:
        raise ValueError(f"num_tasks must be >= 1, got {n}")
    tasks = {t: TaskStatus(t) for t in range(n)}
    sha = plan.sha256
    for item in plan.items:
        ts = tasks[item.task(n)]
        ts.planned += 1
        state, detail, header = song_state(out, item, sha, verify=verify)
        if state == "done":
            ts.done += 1
            ts.frames += int(header["frames"])
        elif state == "skipped":
            ts.skipped += 1
        elif state == "missing":
            ts.missing.append(item.name)
        else:
            ts.damaged.append(item.name)
            logger.warning("damaged: %s", detail)
    return CorpusStatus(str(out), n, tasks, list(plan.problems))


# ------------------------------------------------------------------------------------------------ loading
@dataclass
class CorpusSong:
    """One generated song, frame-aligned: ``sketch_ids[f]``, ``latents[:, f]`` and ``features[:, f]`` are frame f."""

    name: str
    index: int
    sketch_ids: torch.Tensor  # int64 [F]: the ids the base model sampled (the truth a tokenizer should recover)
    latents: torch.Tensor  # float32 [C, F]
    features: torch.Tensor  # [L, F, D] MuQ hidden states ``layers`` of the decoded audio (float16 by default)
    layers: tuple[int, ...]
    lyric_ids: torch.Tensor  # int64 [N]
    prompt_latents: torch.Tensor | None  # float32 [C, F_prompt]; None when generated without a prompt
    meta: dict[str, Any]  # the file's header
    audio: torch.Tensor | None = None  # float32 [channels, T] when loaded with_audio (and stored)

    @property
    def num_frames(self) -> int:
        return int(self.sketch_ids.shape[0])

    @property
    def sample_rate(self) -> int:
        return int(self.meta["audio"]["sample_rate"])


def _layer_positions(header: Mapping[str, Any], layers: Sequence[int] | None, path: Path) -> list[int]:
    stored = [int(x) for x in header["muq"]["layers"]]
    if layers is None:
        return list(range(len(stored)))
    count = int(header["muq"]["num_layers"])
    wanted = [int(x) % count if -count <= int(x) < count else int(x) for x in layers]
    absent = [x for x in wanted if x not in stored]
    if absent:
        raise ValueError(f"{path}: MuQ layer(s) {absent} were not stored; this corpus holds layers {stored}")
    return [stored.index(x) for x in wanted]


def _song(path: Path, tensors: dict[str, torch.Tensor], header: dict[str, Any], positions: list[int],
          with_audio: bool) -> CorpusSong:
    stored = [int(x) for x in header["muq"]["layers"]]
    features = tensors["features"]
    if positions != list(range(len(stored))):
        features = features[positions].contiguous()
    if with_audio and "audio" not in tensors:
        raise ValueError(f"{path}: no audio stored (the corpus was generated with store_audio=False)")
    return CorpusSong(
        name=header["name"],
        index=int(header["index"]),
        sketch_ids=tensors["sketch_ids"],
        latents=tensors["latents"],
        features=features,
        layers=tuple(stored[p] for p in positions),
        lyric_ids=torch.tensor(header["lyric_ids"], dtype=torch.long),
        prompt_latents=tensors.get("prompt_latents"),
        meta=header,
        audio=tensors.get("audio") if with_audio else None,
    )


def iter_corpus(
    out_dir: str | os.PathLike, *, layers: Sequence[int] | None = None, with_audio: bool = False,
    verify: bool = True, require_complete: bool = False,
) -> Iterator[CorpusSong]:
    """The finished songs of a corpus in index order, one file at a time (see :func:`load_corpus`)."""
    out = Path(out_dir)
    plan = read_plan(out)
    sha = plan.sha256
    missing, skipped = _check_before_loading(out, plan, require_complete)
    positions: list[int] | None = None
    for item in plan.items:
        path = song_path(out, item.name)
        if item.name in missing or item.name in skipped:
            continue
        try:
            tensors, header = read_song(path, verify=verify)
        except CorpusFileError as e:
            raise CorpusFileError(
                f"{e}; run the corpus generation again for the task holding song index {item.index} "
                "(task = index % num_tasks) to redo it"
            ) from e
        why = _matches(header, item, sha)
        if why:
            raise CorpusFileError(f"{path}: {why}; run the corpus generation again to redo it")
        if positions is None:
            positions = _layer_positions(header, layers, path)
        yield _song(path, tensors, header, positions, with_audio)


def _check_before_loading(out: Path, plan: CorpusPlan, require_complete: bool) -> tuple[set[str], set[str]]:
    """(missing names, skipped names), logged; an incomplete corpus refused when ``require_complete``."""
    missing, skipped = set(), set()
    for item in plan.items:
        if song_path(out, item.name).exists():
            continue
        (skipped if skip_path(out, item.name).exists() else missing).add(item.name)
    if skipped:
        logger.info("%s: %d song(s) skipped at generation (EOS in the first patch: no frames)", out, len(skipped))
    if missing:
        msg = (f"{out}: {len(missing)} of {len(plan.items)} planned song(s) are not generated yet "
               f"(e.g. {sorted(missing)[:3]}); corpus_status() lists them per task")
        if require_complete:
            raise CorpusFileError(msg + "; finish every task first")
        logger.warning("%s", msg)
    return missing, skipped


def load_corpus(
    out_dir: str | os.PathLike, *, layers: Sequence[int] | None = None, with_audio: bool = False,
    verify: bool = True, require_complete: bool = False,
) -> list[CorpusSong]:
    """Every finished song of a corpus, in index order.

    ``layers`` picks stored MuQ layers (default: all, in stored order); ``with_audio`` also returns the decoded
    audio; ``verify`` checks each file's content hash; ``require_complete`` refuses a corpus with songs still
    missing (otherwise they are counted in a warning). Skipped songs (EOS in the first patch) are counted in the
    log. A damaged file raises :class:`CorpusFileError` naming it.
    """
    return list(iter_corpus(out_dir, layers=layers, with_audio=with_audio, verify=verify,
                            require_complete=require_complete))
