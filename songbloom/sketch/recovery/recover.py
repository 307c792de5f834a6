"""Sketch-id recovery end to end: a base model's own sketch ids, recovered as a codebook artifact, and judged.

Three stages, each resumable, all in one work folder (several may run in one call, in this order;
``python -m songbloom.sketch recover``, see docs/sketch_recovery.md):

- ``generate``: the self-distillation corpus (:func:`~songbloom.sketch.recovery.corpus.generate_corpus`) in
  ``<work_dir>/corpus``: songs the base model sings from the requests JSONL, with the ids it sampled and MuQ
  features of the decoded audio. One array task, or all of them (``--stage all``).
- ``fit``: a linear probe from MuQ features to those ids (:mod:`~songbloom.sketch.recovery.fit`), written as a
  ``linear_probe`` codebook with a ``recovery`` block naming the base's sketch tables. Refuses an incomplete
  corpus, naming the tasks to rerun. A rerun on the same corpus with the same settings keeps the file.
- ``report``: on the user's own songs, the base model's teacher-forced AR and flow losses with the recovered ids
  and with a fresh k-means codebook's (:mod:`~songbloom.sketch.recovery.report`); ``report.json`` and a table.

The stages need different things: ``fit`` needs no base model (the corpus plan records what it needs) and only
the MuQ's identity; ``generate`` and ``report`` load the base model.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from songbloom.sketch.alignment import FRAME_RATE
from songbloom.sketch.artifact import SketchCodebook, load_codebook, save_codebook
from songbloom.sketch.features import MuQFeatureExtractor
from songbloom.sketch.muq_backbone import DEFAULT_MUQ_MODEL_ID, build_tiny_muq, load_muq, muq_fingerprint
from songbloom.sketch.recovery.base_model import DTYPES, BaseModel, load_base
from songbloom.sketch.recovery.calibration_songs import CalibrationSongs, calibration_features, read_calibration_songs
from songbloom.sketch.recovery.corpus import CorpusReport, generate_corpus
from songbloom.sketch.recovery.corpus_files import CorpusStatus, corpus_status, load_corpus
from songbloom.sketch.recovery.corpus_plan import CorpusPlan, CorpusSettings, feature_dtype, read_plan
from songbloom.sketch.recovery.fit import ProbeFitSettings, fit_probe, split_corpus
from songbloom.sketch.recovery.fresh import fit_fresh_codebook, fresh_num_codes
from songbloom.sketch.recovery.heldout import HeldoutEncoder, read_heldout
from songbloom.sketch.recovery.probe_artifact import probe_codebook
from songbloom.sketch.recovery.report import REPORT_FORMAT, REPORT_VERSION, build_report
from songbloom.utils.atomic import atomic_write_json

logger = logging.getLogger(__name__)

STAGES = ("all", "generate", "fit", "report")
CORPUS_DIR = "corpus"
REPORT_DIR = "report"
TINY_MUQ_DIR = "tiny_muq"
DEFAULT_CODEBOOK_NAME = "recovered_codebook.safetensors"
REPORT_FILE = "report.json"
FRESH_CODEBOOK_NAME = "fresh_kmeans.safetensors"


class CorpusIncompleteError(ValueError):
    """The fit was asked for before every array task finished its songs."""


@dataclass
class ReportSettings:
    """The report stage: held-out songs and the comparison codebook.

    ``fresh_codebook``: an existing k-means artifact to compare with (else one is fitted on the held-out songs'
    MuQ layer ``fresh_layer``). ``max_seconds``: songs are cut there (default: the model's ``max_dur``).
    """

    heldout: Path
    fresh_codebook: Path | None = None
    fresh_layer: int = -1
    fresh_epochs: int = 10
    seed: int = 0
    batch_size: int = 2
    max_seconds: float | None = None
    lyrics_policy: str = "warn"
    language: str | None = None


@dataclass
class RecoveryConfig:
    """Everything a recovery run needs (the Python API of ``python -m songbloom.sketch recover``).

    ``base``: a release directory or ``.pt``, an export directory, or a release name whose files are in
    ``local_dir`` or the Hub cache. ``muq``: a MuQ hub id or local folder, or ``tiny_muq_seed`` for a tiny random
    one saved in the work folder (tests, demos). ``out``: the codebook (default in the work folder).
    ``fit_layers``: the corpus's MuQ layers the probe may use (default: every stored layer).
    ``calibration_songs``: a JSONL of the user's songs (audio) on which the switch bonus is chosen (default: the
    report's ``heldout`` songs when a report is configured, else the held-out generations).
    """

    work_dir: Path
    base: str | None = None
    requests: Path | None = None
    out: Path | None = None
    report_path: Path | None = None
    muq: str = DEFAULT_MUQ_MODEL_ID
    tiny_muq_seed: int | None = None
    local_dir: str | None = None
    device: str | None = None
    dtype: str = "float32"
    fit: ProbeFitSettings = field(default_factory=ProbeFitSettings)
    fit_layers: tuple[int, ...] | None = None
    calibration_songs: Path | None = None
    refit: bool = False
    report: ReportSettings | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        self.work_dir = Path(self.work_dir)
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype={self.dtype!r}: choose from {sorted(DTYPES)}")

    @property
    def corpus_dir(self) -> Path:
        return self.work_dir / CORPUS_DIR

    @property
    def codebook_path(self) -> Path:
        return Path(self.out) if self.out is not None else self.work_dir / DEFAULT_CODEBOOK_NAME

    @property
    def report_file(self) -> Path:
        return Path(self.report_path) if self.report_path is not None else self.work_dir / REPORT_FILE


@dataclass
class MuQSource:
    """The MuQ of a recovery: the model, the id a codebook records (hub id or folder) and its fingerprint."""

    model: nn.Module
    model_id: str
    fingerprint: str

    @classmethod
    def open(cls, muq: str, tiny_seed: int | None, work_dir: Path, device: torch.device | str) -> MuQSource:
        if tiny_seed is not None:
            folder = (Path(work_dir) / TINY_MUQ_DIR).resolve()
            model = build_tiny_muq(tiny_seed, folder)
            return cls(model.to(device).eval(), str(folder), muq_fingerprint(model))
        model = load_muq(muq, device=device)
        model_id = str(Path(muq).resolve()) if Path(muq).is_dir() else str(muq)  # a folder: found from anywhere
        return cls(model, model_id, muq_fingerprint(model))


@dataclass
class RecoveryResult:
    corpus: CorpusReport | None = None
    codebook_path: Path | None = None
    codebook: SketchCodebook | None = None
    report: dict[str, Any] | None = None


# ------------------------------------------------------------------------------------------------ helpers
def incomplete_message(status: CorpusStatus) -> str:
    tasks = [t.task for t in status.tasks.values() if not t.complete]
    shown = ", ".join(str(t) for t in tasks)
    return (
        f"{status.out_dir}: the corpus is not complete (task(s) {shown} of {status.num_tasks} still have songs to "
        f"make), so no codebook is fitted:\n{status.summary()}\nRun those tasks again (`recover --stage generate "
        f"--task-index I --num-tasks {status.num_tasks}` with the same flags; finished songs are skipped), or "
        "`--stage all` to make every missing song here."
    )


def _json_equal(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _check_muq(what: str, recorded: str | None, muq: MuQSource) -> None:
    if recorded is not None and recorded != muq.fingerprint:
        raise ValueError(
            f"{what} was made with a MuQ whose fingerprint is {recorded}, but the MuQ given here ({muq.model_id}) "
            f"has {muq.fingerprint}: pass the same --muq (or --tiny-muq-seed) as when it was made"
        )


def _song_seconds(plan: CorpusPlan) -> float:
    """The longest song the corpus generated: calibration songs are read up to there."""
    return float(plan.identity["sampling"]["max_frames"]) / FRAME_RATE


def _fit_record(settings: ProbeFitSettings, layers: tuple[int, ...] | None,
                calibration: CalibrationSongs | None) -> dict[str, Any]:
    record = {k: v for k, v in vars(settings).items() if k != "device"}
    record["candidate_layers"] = None if layers is None else list(layers)
    record["calibration_songs"] = None if calibration is None else calibration.identity
    return json.loads(json.dumps(record))


# ------------------------------------------------------------------------------------------------ the run
class Recovery:
    """One recovery run over a work folder; the base model and the MuQ are loaded when a stage needs them."""

    def __init__(self, config: RecoveryConfig):
        self.config = config

    @functools.cached_property
    def devices(self):
        from songbloom.building.devices import resolve_inference_devices

        return resolve_inference_devices(self.config.device, DTYPES[self.config.dtype])

    @functools.cached_property
    def base(self) -> BaseModel:
        if not self.config.base:
            raise ValueError("--base is required for the generate and report stages (the model to recover from)")
        d = self.devices
        base = load_base(self.config.base, local_dir=self.config.local_dir, device=d.device, dtype=d.dtype)
        base.bundle.vae.to(d.vae_device)
        return base

    @functools.cached_property
    def muq(self) -> MuQSource:
        c = self.config
        return MuQSource.open(c.muq, c.tiny_muq_seed, c.work_dir, self.devices.device)

    # -------------------------------------------------------------------- generate
    def generate(
        self, settings: CorpusSettings | None = None, *, task_index: int | None = None, num_tasks: int | None = None
    ) -> CorpusReport:
        """This array task's songs of the corpus (``task_index``/``num_tasks`` default: the SLURM array)."""
        if self.config.requests is None:
            raise ValueError("--requests is required to generate the corpus (a JSONL of idx, lyrics, prompt_wav)")
        extractor = MuQFeatureExtractor(self.muq.model, device=self.devices.device)
        return generate_corpus(
            self.base.bundle, self.config.requests, self.config.corpus_dir, extractor, settings,
            task_index=task_index, num_tasks=num_tasks, base=self.base.corpus_facts(), progress=self.config.progress,
        )  # fmt: skip

    # -------------------------------------------------------------------- fit
    def _kept_codebook(self, plan: CorpusPlan, record: dict[str, Any]) -> SketchCodebook | None:
        path = self.config.codebook_path
        if self.config.refit or not path.is_file():
            return None
        try:
            existing = load_codebook(path)
        except (OSError, ValueError) as e:
            logger.warning("%s: cannot read the existing codebook (%s); fitting again", path, e)
            return None
        recovery = existing.recovery or {}
        same_corpus = recovery.get("corpus", {}).get("plan_sha256") == plan.sha256
        same_fit = _json_equal(existing.metadata.get("training", {}).get("fit_record"), record)
        if same_corpus and same_fit and existing.metadata.get("muq_fingerprint") == self.muq.fingerprint:
            logger.info("%s was fitted on this corpus with these settings: kept (pass --refit to fit again)", path)
            return existing
        logger.info("%s was fitted on another corpus or with other settings: fitting again", path)
        return None

    def fit(self) -> SketchCodebook:
        """Fit the probe on the finished corpus and write the codebook; refuses an incomplete corpus."""
        c = self.config
        plan = read_plan(c.corpus_dir)
        status = corpus_status(c.corpus_dir)
        if not status.complete:
            raise CorpusIncompleteError(incomplete_message(status))
        if status.done < 2:
            raise ValueError(f"{c.corpus_dir}: {status.done} song(s) with frames; the fit needs at least 2 (one is "
                             "held out): add request lines or --songs-per-request")
        _check_muq(f"the corpus in {c.corpus_dir}", plan.identity["muq"].get("fingerprint"), self.muq)
        calibration = self._calibration_songs(plan)
        record = _fit_record(c.fit, c.fit_layers, calibration)
        kept = self._kept_codebook(plan, record)
        if kept is not None:
            return kept
        songs = load_corpus(c.corpus_dir, layers=c.fit_layers, require_complete=True)
        split = split_corpus([s.features for s in songs], [s.sketch_ids for s in songs], songs[0].layers, c.fit)
        num_pitch = int(plan.identity["base"]["num_pitch"])
        calibration_feats = None
        if calibration is not None:
            calibration_feats = calibration_features(
                calibration, MuQFeatureExtractor(self.muq.model, device=self.devices.device), songs[0].layers,
                sample_rate=int(plan.identity["base"]["vae"]["sample_rate"]),
                block_size=int(plan.identity["base"]["block_size"]), max_seconds=_song_seconds(plan),
                feature_dtype=feature_dtype(plan.identity["settings"]["feature_dtype"]),
            )  # fmt: skip
        logger.info("fitting a linear probe to %d ids on %d training frames (%d songs), MuQ layers %s", num_pitch,
                    split.train_ids.numel(), split.train_songs, list(songs[0].layers))
        probe = fit_probe(split, num_pitch, c.fit, calibration_feats)
        extra: dict[str, Any] = {"fit_record": record, "corpus_dir": str(c.corpus_dir.resolve())}
        if calibration is not None:
            extra["calibration_songs"] = {"file": str(calibration.path.resolve()), "skipped": calibration.skipped}
        codebook = probe_codebook(
            probe, plan, status, c.fit, muq_model_id=self.muq.model_id, muq_fingerprint=self.muq.fingerprint,
            extra_training=extra,
        )  # fmt: skip
        save_codebook(c.codebook_path, codebook)
        return codebook

    def _calibration_songs(self, plan: CorpusPlan) -> CalibrationSongs | None:
        """The songs the switch bonus is chosen on: --calibration-songs, else the report's --heldout songs."""
        c = self.config
        path = c.calibration_songs
        if path is not None and not c.fit.calibrate_switching:
            raise ValueError(f"--calibration-songs {path}: the songs choose the switch bonus, which "
                             "--no-probe-calibrate-switching turns off; drop one of the two")
        if not c.fit.calibrate_switching:
            return None
        if path is None and c.report is not None:
            path = c.report.heldout
            logger.info("the switch bonus is chosen on the --heldout songs %s (pass --calibration-songs for others)",
                        path)
        if path is None:
            logger.warning("no --calibration-songs: the switch bonus is chosen on held-out generations, where the "
                           "probe is surer than on real audio; on the #17 proxy that missed the base model's rate by "
                           "up to 19 % on real songs, against 6 % when chosen on 24 real songs. Pass a JSONL of "
                           "your songs (audio) with --calibration-songs")
            return None
        return read_calibration_songs(path, _song_seconds(plan))

    # -------------------------------------------------------------------- report
    def _fresh_codebook(self, songs, layer: int, settings: ReportSettings) -> tuple[SketchCodebook, str]:
        if settings.fresh_codebook is not None:
            fresh = load_codebook(settings.fresh_codebook)
            _check_muq(f"--fresh-codebook {settings.fresh_codebook}", fresh.metadata.get("muq_fingerprint"), self.muq)
            if fresh.num_codes > self.base.num_pitch:
                raise ValueError(f"--fresh-codebook {settings.fresh_codebook}: {fresh.num_codes} codes, more than the "
                                 f"base model's num_pitch {self.base.num_pitch}")
            layer = fresh.metadata["muq_layer"]
            return fresh, f"{settings.fresh_codebook} ({fresh.num_codes} codes, MuQ layer {layer})"
        frames = sum(s.num_frames for s in songs)
        k = fresh_num_codes(frames, self.base.num_pitch)
        fresh = fit_fresh_codebook(
            [s.layer(layer) for s in songs], k, layer=layer, muq_model_id=self.muq.model_id,
            muq_fingerprint=self.muq.fingerprint, epochs=settings.fresh_epochs, seed=settings.seed,
            device=self.devices.device,
        )  # fmt: skip
        path = save_codebook(self.config.work_dir / REPORT_DIR / FRESH_CODEBOOK_NAME, fresh)
        note = "" if k == self.base.num_pitch else f"; only {frames} frames, so {k} codes instead of num_pitch"
        return fresh, f"k-means fitted on the held-out songs ({k} codes, MuQ layer {layer}{note}), saved to {path}"

    def _report_layers(self, recovered: SketchCodebook, settings: ReportSettings) -> tuple[int, int]:
        n = int(self.muq.model.config.encoder_depth) + 1
        if not -n <= settings.fresh_layer < n:
            raise ValueError(f"--fresh-layer {settings.fresh_layer}: this MuQ has hidden states 0..{n - 1}")
        if settings.fresh_codebook is not None:
            fresh_layer = int(load_codebook(settings.fresh_codebook).metadata["muq_layer"])
        else:
            fresh_layer = settings.fresh_layer % n
        return int(recovered.metadata["muq_layer"]), fresh_layer

    def report(self) -> dict[str, Any]:
        """Score recovered and fresh ids on the held-out songs; writes ``report.json`` and returns it."""
        c = self.config
        settings = c.report
        if settings is None:
            raise ValueError("--heldout is required for the report (a JSONL of your songs: audio, lyrics)")
        if not c.codebook_path.is_file():
            raise FileNotFoundError(f"{c.codebook_path}: no recovered codebook yet; run the fit first (--stage fit, "
                                    "or --stage all), or pass the codebook with --out")
        recovered = load_codebook(c.codebook_path)
        _check_muq(f"the codebook {c.codebook_path}", recovered.metadata.get("muq_fingerprint"), self.muq)
        rec_layer, fresh_layer = self._report_layers(recovered, settings)
        tables_match = self._tables_match(recovered)
        extractor = MuQFeatureExtractor(self.muq.model, device=self.devices.device)
        items, problems = read_heldout(settings.heldout)
        encoder = HeldoutEncoder(
            self.base.bundle, extractor, tuple(sorted({rec_layer, fresh_layer})), c.work_dir / REPORT_DIR / "songs",
            max_seconds=settings.max_seconds, lyrics_policy=settings.lyrics_policy, language=settings.language,
        )  # fmt: skip
        songs, skipped = encoder.encode(items, Path(settings.heldout))
        skipped = [str(p) for p in problems] + skipped
        if not songs:
            raise ValueError(f"--heldout {settings.heldout}: no usable song ({len(skipped)} skipped):\n  - "
                             + "\n  - ".join(skipped or ["the file has no lines"]))
        fresh, fresh_source = self._fresh_codebook(songs, fresh_layer, settings)
        body = build_report(self.base.bundle.model, songs, {"recovered": recovered, "fresh": fresh},
                            num_pitch=self.base.num_pitch, seed=settings.seed, batch_size=settings.batch_size)
        report = {
            "format": REPORT_FORMAT,
            "version": REPORT_VERSION,
            "base": {"name": self.base.name, "sketch_tables_sha256": self.base.sketch_tables_sha256,
                     "num_pitch": self.base.num_pitch},
            "codebooks": {
                "recovered": {"path": str(c.codebook_path), "hash": recovered.codebook_hash,
                              "tokenizer_kind": recovered.tokenizer_kind, "muq_layer": rec_layer,
                              "recovered_from": (recovered.recovery or {}).get("base", {}).get("name"),
                              "tables_match": tables_match},
                "fresh": {"hash": fresh.codebook_hash, "num_codes": fresh.num_codes, "muq_layer": fresh_layer,
                          "source": fresh_source},
            },
            **body,
            "skipped": skipped,
            "settings": {"heldout": str(settings.heldout), "seed": settings.seed, "batch_size": settings.batch_size,
                         "max_seconds": encoder.max_seconds, "dtype": c.dtype},
        }
        atomic_write_json(c.report_file, report)
        return report

    def _tables_match(self, codebook: SketchCodebook) -> bool | None:
        """Whether the codebook was recovered from this base's sketch tables (None: not a recovered codebook)."""
        recovery = codebook.recovery
        if recovery is None:
            logger.warning("%s is not a recovered codebook (no recovery block); reporting on it all the same",
                           self.config.codebook_path)
            return None
        same = recovery["base"]["sketch_tables_sha256"] == self.base.sketch_tables_sha256
        if not same:
            logger.warning(
                "%s was recovered from %s, whose sketch tables differ from those of the base model here (%s): its ids "
                "are not this model's; the report shows how far they carry over", self.config.codebook_path,
                recovery["base"]["name"], self.base.name,
            )  # fmt: skip
        return same

    # -------------------------------------------------------------------- all
    def run(
        self, stages: str | Sequence[str] = "all", *, corpus_settings: CorpusSettings | None = None,
        task_index: int | None = None, num_tasks: int | None = None,
    ) -> RecoveryResult:
        """Run stages in order (``generate``, ``fit``, ``report``); ``all`` is the whole corpus here (every task),
        the fit, and the report when held-out songs are configured."""
        wanted = parse_stages(stages)
        if "all" in ([stages] if isinstance(stages, str) else list(stages)):
            if task_index is not None or num_tasks is not None:
                raise ValueError("--stage all makes every song of the corpus here; --task-index/--num-tasks belong "
                                 "to --stage generate (one array task)")
            task_index, num_tasks = 0, 1
            if self.config.report is None:
                wanted.discard("report")
        result = RecoveryResult()
        if "generate" in wanted:
            result.corpus = self.generate(corpus_settings, task_index=task_index, num_tasks=num_tasks)
        if "fit" in wanted:
            result.codebook = self.fit()
            result.codebook_path = self.config.codebook_path
        if "report" in wanted:
            result.report = self.report()
        return result


def parse_stages(stages: str | Sequence[str]) -> set[str]:
    """The stages to run (``all`` = every one); ValueError naming an unknown one."""
    names = [stages] if isinstance(stages, str) else list(stages)
    unknown = [s for s in names if s not in STAGES]
    if unknown or not names:
        raise ValueError(f"stage(s) {unknown or names}: choose from {', '.join(STAGES)}")
    return {"generate", "fit", "report"} if "all" in names else set(names)


def recover(config: RecoveryConfig, stages: str | Sequence[str] = "all", **kwargs: Any) -> RecoveryResult:
    """Run recovery stages (see :meth:`Recovery.run`): the Python form of ``python -m songbloom.sketch recover``."""
    return Recovery(config).run(stages, **kwargs)
