"""What a self-distillation corpus holds: its settings, its songs (stable index, name, seed) and the plan file.

Every array task plans the whole corpus from the same JSONL the same way, then takes its share. Song ``k`` is
request ``k // songs_per_request`` (counting the JSONL's valid lines in order, as ``infer.py`` does), sample
``k % songs_per_request``, named ``<idx>_s<sample>`` and generated with seed ``seed + k``: the song ``infer.py
--seed <seed> --n-samples <songs_per_request> --penalty-mode none`` writes under the same name, with the same
settings (a corpus samples without the repetition penalty: :data:`CORPUS_PENALTY_MODE`). A line whose
lyrics cannot be used keeps its indices (the other songs' seeds never move) and is listed in the plan's problems.

The plan file (``corpus_plan.json``) is written once, atomically, by the first task; every later run compares its
own plan with it and stops with :class:`CorpusPlanMismatch` when anything that decides a song's content differs
(settings, sampling, the base model, the MuQ and its layers, the songs and their lyrics or prompts).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from songbloom.inference.generate import SamplingParams
from songbloom.inference.jobs import RunSummary, encode_item_lyrics, read_jsonl
from songbloom.inference.prompt import PROMPT_LATENT_MODES
from songbloom.sketch.alignment import ALIGNMENT_RULE
from songbloom.text.lyric_policy import LYRICS_POLICIES
from songbloom.utils.provenance import path_fingerprint, songbloom_version, update_with_sampled_tensors

logger = logging.getLogger(__name__)

PLAN_FILE = "corpus_plan.json"
PLAN_FORMAT = "songbloom-sketch-corpus-plan"
CORPUS_VERSION = 1
FEATURE_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


# The release samples sketch ids with a repetition penalty (a listening-quality heuristic). A corpus is there to show
# which audio goes with which ids, so it samples the ids the base model learned, penalty off. Measured on the CPU
# proxy (benchmarks/README.md): with the penalty, the sampled ids switch on 8 points more frames than the hidden
# ids of real songs do (2 without), the teacher's audio carries 2-4 points fewer of them, and the probe agrees
# 0.007-0.008 less.
CORPUS_PENALTY_MODE = "none"

# For the same reason the ids are drawn from the LM's own distribution, unsharpened: temperature 1, no top-k or
# top-p cut, no classifier-free guidance on the LM (the DiT keeps the model's guidance: it renders, it does not
# choose ids). Sharpened sampling makes the ids stay on their code more often than the model believes they do, and
# the switch bonus is calibrated to the sampled ids' rate. On the CPU proxy (benchmarks/README.md) the teacher's
# sampled ids switched 14 % less often than real songs' hidden ids at 16 codes with the model's temperature, top-k
# and guidance (seed 42) and 7 % less at 32 codes (seed 26); unsharpened, 6 % less and 2 % more (64 and 100 codes:
# -3 % and +3 %, from -3 % and +2 %), agreement within 0.005. "model" samples as infer.py does, less the penalty.
UNSHARPENED = {"temp": 1.0, "top_k": 0, "top_p": 0.0}
CORPUS_SAMPLING_MODES = ("unsharpened", "model")
CORPUS_SAMPLING = "unsharpened"


def corpus_sampling(inference, max_frames: float, mode: str = CORPUS_SAMPLING, **overrides: Any) -> SamplingParams:
    """The corpus's sampling settings over a model's ``inference`` block: ``mode`` "unsharpened" (the default:
    :data:`UNSHARPENED`, LM guidance 1) or "model" (its own settings), the repetition penalty off
    (:data:`CORPUS_PENALTY_MODE`); ``overrides`` (flags the user gave) win over both."""
    if mode not in CORPUS_SAMPLING_MODES:
        raise ValueError(f"corpus sampling {mode!r}: choose from {CORPUS_SAMPLING_MODES}")
    fields: dict[str, Any] = {"penalty_mode": CORPUS_PENALTY_MODE}
    if mode == "unsharpened":
        dit_coef = SamplingParams(inference, max_frames=max_frames, **{k: v for k, v in overrides.items()
                                                                         if k == "cfg_coef"}).dit_coef
        fields.update(UNSHARPENED, cfg_coef=(1.0, dit_coef))
    fields.update(overrides)
    return SamplingParams(inference, max_frames=max_frames, **fields)


class CorpusPlanMismatch(ValueError):
    """A corpus folder was started with other settings, another base model, MuQ or job file."""


@dataclass
class CorpusSettings:
    """How to generate a corpus. All but ``batch_size`` decide what the songs are and are kept in the plan file.

    ``params`` None means :func:`corpus_sampling` over the base model's inference settings and length cap: its
    ids unsharpened (:data:`UNSHARPENED`), the repetition penalty off (:data:`CORPUS_PENALTY_MODE`).
    ``layers`` are MuQ hidden-state indices (negative counts from the end; made non-negative against the MuQ).
    """

    songs_per_request: int = 1
    seed: int = 0
    layers: tuple[int, ...] = (-1,)
    params: SamplingParams | None = None
    batch_size: int = 1
    prompt_latent: str = "sample"
    store_audio: bool = True
    feature_dtype: str = "float16"
    lyrics_policy: str = "warn"
    language: str | None = None
    chunked_decode: bool = True

    def __post_init__(self) -> None:
        self.layers = tuple(int(x) for x in self.layers)
        problems = []
        if self.songs_per_request < 1 or self.batch_size < 1:
            problems.append("songs_per_request and batch_size must be >= 1")
        if not self.layers:
            problems.append("layers must name at least one MuQ hidden state")
        if self.prompt_latent not in PROMPT_LATENT_MODES:
            problems.append(f"prompt_latent={self.prompt_latent!r}: choose from {PROMPT_LATENT_MODES}")
        if self.feature_dtype not in FEATURE_DTYPES:
            problems.append(f"feature_dtype={self.feature_dtype!r}: choose from {sorted(FEATURE_DTYPES)}")
        if self.lyrics_policy not in LYRICS_POLICIES:
            problems.append(f"lyrics_policy={self.lyrics_policy!r}: choose from {LYRICS_POLICIES}")
        if self.params is not None and self.params.exact_release_rng:
            problems.append(
                "exact_release_rng replays the official single-song global RNG stream; a corpus gives each song "
                "its own generator (so a song depends only on its seed): turn it off"
            )
        if problems:
            raise ValueError("invalid corpus settings:\n  - " + "\n  - ".join(problems))

    def sampling(self, bundle) -> SamplingParams:
        """The sampling settings in effect for ``bundle``."""
        if self.params is not None:
            return self.params
        return corpus_sampling(bundle.config.inference, bundle.config.max_frames)

    def content_settings(self) -> dict[str, Any]:
        """The settings that decide a song's content (everything except the batch size and the sampling)."""
        out = dataclasses.asdict(self)
        for run_only in ("params", "batch_size", "layers"):  # sampling and layers are recorded resolved
            out.pop(run_only)
        return out


@dataclass
class CorpusItem:
    """One planned song."""

    index: int
    name: str
    seed: int
    request_idx: str
    sample: int
    line: int  # the JSONL line it comes from
    lyric_ids: list[int]
    prompt_path: str
    prompt_fingerprint: str

    def task(self, num_tasks: int) -> int:
        return self.index % num_tasks


@dataclass
class CorpusPlan:
    """Every song of the corpus and what decides their content (``identity``)."""

    items: list[CorpusItem]
    identity: dict[str, Any]
    problems: list[str] = field(default_factory=list)  # job-file lines that give no songs, with why
    source: dict[str, Any] = field(default_factory=dict)  # informational: job file, songbloom version

    @functools.cached_property
    def sha256(self) -> str:
        """Hash of the identity and the items; every song file records it (computed once: plans do not change)."""
        body = {"identity": self.identity, "items": [dataclasses.asdict(i) for i in self.items]}
        return hashlib.sha256(_canonical(body).encode()).hexdigest()

    def task_items(self, task_index: int, num_tasks: int) -> list[CorpusItem]:
        """The songs of one array task: ``index % num_tasks == task_index`` (disjoint, and together complete)."""
        return [i for i in self.items if i.task(num_tasks) == task_index]

    def by_name(self) -> dict[str, CorpusItem]:
        return {i.name: i for i in self.items}

    def to_json(self) -> dict[str, Any]:
        return {
            "format": PLAN_FORMAT,
            "version": CORPUS_VERSION,
            "plan_sha256": self.sha256,
            "identity": self.identity,
            "items": [dataclasses.asdict(i) for i in self.items],
            "problems": self.problems,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], path: Path) -> CorpusPlan:
        if data.get("format") != PLAN_FORMAT:
            raise ValueError(f"{path}: not a corpus plan (format {data.get('format')!r})")
        if data.get("version") != CORPUS_VERSION:
            raise ValueError(
                f"{path}: corpus plan version {data.get('version')!r}, this songbloom reads version "
                f"{CORPUS_VERSION}: generate the corpus again with this version (or use the songbloom that wrote it)"
            )
        try:
            items = [CorpusItem(**i) for i in data["items"]]
            plan = cls(items, data["identity"], list(data.get("problems", [])), dict(data.get("source", {})))
        except (KeyError, TypeError) as e:
            raise ValueError(f"{path}: damaged corpus plan ({e})") from e
        if data.get("plan_sha256") != plan.sha256:
            raise ValueError(f"{path}: damaged corpus plan (its items or identity do not match its plan_sha256)")
        return plan


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _jsonable(obj: Any) -> Any:
    """Tuples become lists, as they will after a round trip through the plan file."""
    return json.loads(json.dumps(obj))


# ------------------------------------------------------------------------------------------------ identity
def describe_base(bundle, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What identifies the base model: its file (fingerprint), a sampled fingerprint of the generator and VAE
    weights in the dtype they run in, and its sketch geometry. ``extra`` (e.g. a sketch-table hash) is merged in."""
    cfg = bundle.config
    path = cfg.pretrained_path
    gen = hashlib.sha256()
    update_with_sampled_tensors(gen, bundle.model.state_dict())
    vae = hashlib.sha256()
    update_with_sampled_tensors(vae, bundle.vae.state_dict())
    out = {
        "name": Path(path).name if path else None,
        "file_fingerprint": path_fingerprint(path) if path and Path(path).exists() else None,
        "weights_fingerprint": gen.hexdigest()[:16],
        "dtype": str(next(bundle.model.parameters()).dtype).replace("torch.", ""),
        "num_pitch": int(cfg.model.num_pitch),
        "block_size": int(cfg.model.block_size),
        "latent_dim": int(cfg.model.latent_dim),
        "vae": {"sample_rate": int(bundle.vae.sample_rate), "weights_fingerprint": vae.hexdigest()[:16]},
        "training_language": bundle.training_language,
    }
    out.update(dict(extra or {}))
    return _jsonable(out)


def corpus_identity(
    settings: CorpusSettings, params: SamplingParams, base: Mapping[str, Any], muq: Mapping[str, Any]
) -> dict[str, Any]:
    """Everything besides the songs themselves that decides their content."""
    return _jsonable(
        {
            "settings": settings.content_settings(),
            "sampling": params.as_dict(),
            "base": dict(base),
            "muq": dict(muq),
            "alignment_rule": ALIGNMENT_RULE,
        }
    )


# ------------------------------------------------------------------------------------------------ planning
def plan_corpus(
    jsonl: str | os.PathLike, bundle, settings: CorpusSettings, identity: Mapping[str, Any]
) -> CorpusPlan:
    """Read the job file (:func:`songbloom.inference.jobs.read_jsonl`) and list every song of the corpus.

    Lyrics are encoded here (they are part of the plan); prompts are only fingerprinted (each task encodes its
    own). Lines that give no songs are logged and kept in ``plan.problems``.
    """
    jsonl = Path(jsonl)
    job_items, problems = read_jsonl(jsonl)
    summary = RunSummary(problems=list(problems))
    for p in problems:
        logger.error("%s", p)
    n_per = settings.songs_per_request
    items: list[CorpusItem] = []
    fingerprints: dict[str, str] = {}
    for n, job in enumerate(job_items):
        ids = encode_item_lyrics(
            job, jsonl, bundle, summary, policy=settings.lyrics_policy, language=settings.language
        )
        if ids is None:
            continue
        if str(job.prompt_path) not in fingerprints:  # many lines may share a prompt file
            fingerprints[str(job.prompt_path)] = path_fingerprint(job.prompt_path)
        fingerprint = fingerprints[str(job.prompt_path)]
        for i in range(n_per):
            k = n * n_per + i
            items.append(
                CorpusItem(k, f"{job.idx}_s{i}", settings.seed + k, job.idx, i, job.line, list(ids),
                           str(job.prompt_path), fingerprint)
            )
    if not items:
        raise ValueError(
            f"{jsonl}: no usable line ({len(summary.problems)} problem(s) above); give lines with idx, lyrics "
            "and prompt_wav that the model can read"
        )
    source = {"jsonl": str(jsonl.resolve()), "songbloom_version": songbloom_version(),
              "warnings": list(summary.warnings)}
    return CorpusPlan(items, dict(identity), [str(p) for p in summary.problems], source)


# ------------------------------------------------------------------------------------------------ the file
def read_plan(out_dir: str | os.PathLike) -> CorpusPlan:
    """The plan of a corpus folder; a clear error when there is none or it is damaged."""
    path = Path(out_dir) / PLAN_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no corpus plan here; {out_dir} is not a corpus folder (or its generation never started)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(
            f"{path}: damaged corpus plan ({e}); delete it and run the generation again to re-plan "
            "(song files are checked against the new plan and redone where they differ)"
        ) from e
    return CorpusPlan.from_json(data, path)


def _create_once(path: Path, text: str) -> None:
    """Write ``path`` only when it does not exist yet, atomically (concurrent tasks: the first one wins)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # fails if another task got there first
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links: a rename; equal plans make the race harmless
            if not path.exists():
                os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _differences(old: Any, new: Any, where: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{where}.{key}" if where else str(key)
            if key not in old or key not in new:
                out.append(f"{sub}: {'absent' if key not in old else old[key]!r} before, "
                           f"{'absent' if key not in new else new[key]!r} now")
            else:
                out += _differences(old[key], new[key], sub)
        return out
    return [] if old == new else [f"{where}: {old!r} before, {new!r} now"]


def _item_differences(old: list[CorpusItem], new: list[CorpusItem]) -> list[str]:
    if len(old) != len(new):
        return [f"songs: {len(old)} planned before, {len(new)} now"]
    for a, b in zip(old, new, strict=True):
        diff = _differences(dataclasses.asdict(a), dataclasses.asdict(b), f"song {a.index} ({a.name})")
        if diff:
            return diff[:3]
    return []


def ensure_plan(out_dir: str | os.PathLike, plan: CorpusPlan) -> CorpusPlan:
    """Record ``plan`` in ``out_dir`` (first run) or check it equals the recorded one (resume).

    Raises:
        CorpusPlanMismatch: naming each difference and what to do.
    """
    path = Path(out_dir) / PLAN_FILE
    _create_once(path, json.dumps(plan.to_json(), ensure_ascii=False, indent=1))
    existing = read_plan(out_dir)
    if existing.sha256 == plan.sha256:
        return existing
    diffs = _differences(existing.identity, plan.identity) + _item_differences(existing.items, plan.items)
    shown = "\n  - ".join(diffs[:12] or ["(the plans differ)"])
    hint = ""
    old, new = existing.identity.get("sampling", {}), plan.identity.get("sampling", {})
    if old.get("temp") != new.get("temp") and new.get("temp") == UNSHARPENED["temp"]:
        hint = (" A corpus started before the sampling default became unsharpened continues with "
                "--corpus-sampling model.")
    raise CorpusPlanMismatch(
        f"{path}: this corpus was started with other settings, base model, MuQ or job file:\n  - {shown}\n"
        "Resume with exactly the settings it was started with, or write to a new output folder "
        f"(delete this one to start over).{hint}"
    )


def feature_dtype(name: str) -> torch.dtype:
    return FEATURE_DTYPES[name]
