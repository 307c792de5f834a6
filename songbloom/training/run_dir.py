"""Run identity: a stable run directory per (experiment, resolved config), never per launch time.

``run_name`` defaults to ``<experiment>-<hash of the resolved config>``, so a SLURM requeue or a plain re-run
of the same command lands in the same directory and resumes, while a changed config gets a new directory.
An explicit ``run_name`` whose stored config differs is refused unless ``allow_config_change=true``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from songbloom.config import SongBloomConfig
from songbloom.config.run import RunConfig, stored_run_config
from songbloom.models.songbloom import SongBloomModel
from songbloom.utils.atomic import atomic_write_text

logger = logging.getLogger(__name__)

# Keys that do not change what is trained (where files go, how many loader processes, logging backends, test
# hooks): they are left out of the config hash and of the changed-config check.
OPERATIONAL_KEYS = (
    "run_name",
    "resume",
    "allow_config_change",
    "ckpt_path",
    "training.memorisation_warning_epochs",
    "callbacks.best_checkpoint",  # which checkpoints are kept besides the step files, not what is trained
    "paths",
    "logger",
    "callbacks.fault",  # the test-only fault injection (tests/faults/injection.py)
    "print_config",
    "data.num_workers",
    "trainer.enable_progress_bar",
    "trainer.log_every_n_steps",
    "demo.print_paths",
    "callbacks.demo_audio",  # what is listened to and when, not what is trained
    "callbacks.progress_bar",
    "callbacks.lr_monitor",
)

CONFIG_FILE = "config.json"
OVERRIDES_FILE = "overrides.txt"  # the command-line overrides of the latest attempt, one per line
VERSIONS_FILE = "versions.json"  # the songbloom version and package versions of the latest attempt


class ConfigChangedError(RuntimeError):
    """The run directory belongs to a run with a different config."""


def _drop(cfg: dict[str, Any], dotted: str) -> None:
    node: Any = cfg
    *parents, leaf = dotted.split(".")
    for p in parents:
        if not isinstance(node, dict) or p not in node:
            return
        node = node[p]
    if isinstance(node, dict):
        node.pop(leaf, None)


def identity_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The part of a resolved config that defines the run (see :data:`OPERATIONAL_KEYS`)."""
    out = copy.deepcopy(cfg)
    for k in OPERATIONAL_KEYS:
        _drop(out, k)
    return out


def config_hash(cfg: dict[str, Any], length: int = 8) -> str:
    blob = json.dumps(identity_config(cfg), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def default_run_name(cfg: dict[str, Any]) -> str:
    return f"{cfg.get('experiment_name') or 'run'}-{config_hash(cfg)}"


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            key = f"{prefix}.{k}" if prefix else str(k)
            if k not in a:
                out.append(f"{key}: (absent) -> {b[k]!r}")
            elif k not in b:
                out.append(f"{key}: {a[k]!r} -> (absent)")
            else:
                out += _diff(a[k], b[k], key)
        return out
    return [] if a == b else [f"{prefix}: {a!r} -> {b!r}"]


def _stored_config_diffs(run_dir: Path, cfg: dict[str, Any]) -> list[str]:
    stored_path = run_dir / CONFIG_FILE
    if not stored_path.is_file():
        return []
    return _diff(identity_config(json.loads(stored_path.read_text())), identity_config(cfg))


def check_run_dir(runs_root: str | Path, run_name: str, cfg: dict[str, Any], *, allow_config_change: bool) -> Path:
    """``runs_root/run_name``, checked against its stored config; reads only (nothing is created or written).

    Raises:
        ConfigChangedError: the directory holds a run whose config differs (listing the differences).
    """
    run_dir = Path(runs_root) / run_name
    diffs = _stored_config_diffs(run_dir, cfg)
    if diffs and not allow_config_change:
        raise ConfigChangedError(
            f"run dir {run_dir} belongs to a run with a different config:\n  "
            + "\n  ".join(diffs[:30])
            + "\nuse a new run_name, or pass allow_config_change=true to resume it with the new config"
        )
    return run_dir


def command_line_overrides(cfg: Any) -> list[str] | None:
    """The Hydra overrides the config was composed with: the ``hydra`` node of ``cfg`` when it has one (a config
    composed with ``return_hydra_config=True``), else the running Hydra app's; None outside Hydra."""
    try:
        if "hydra" in cfg:
            return [str(o) for o in cfg["hydra"]["overrides"]["task"]]
        from hydra.core.hydra_config import HydraConfig

        return [str(o) for o in HydraConfig.get().overrides.task] if HydraConfig.initialized() else None
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _write_keeping_previous(path: Path, text: str) -> None:
    """Write ``path``; an earlier, different version is kept as ``<stem>.previous.N<suffix>``."""
    if path.is_file() and path.read_text() != text:
        n = len(list(path.parent.glob(f"{path.stem}.previous.*{path.suffix}")))
        path.rename(path.with_name(f"{path.stem}.previous.{n}{path.suffix}"))
    atomic_write_text(path, text)


def record_attempt(run_dir: Path, overrides: list[str] | None) -> None:
    """``versions.json`` (songbloom and package versions) and ``overrides.txt`` (the command line's overrides)."""
    from songbloom.utils.provenance import environment_record

    _write_keeping_previous(run_dir / VERSIONS_FILE, json.dumps(environment_record(), indent=1, sort_keys=True))
    if overrides is not None:
        _write_keeping_previous(run_dir / OVERRIDES_FILE, "".join(f"{o}\n" for o in overrides))


def claim_run_dir(
    run_dir: Path, cfg: dict[str, Any], *, allow_config_change: bool, overrides: list[str] | None = None
) -> Path:
    """Create (or re-open) ``run_dir``, store the resolved config there (with the command-line ``overrides`` and
    the package versions: :func:`record_attempt`) and start its ``train.log``.

    The run calls this once its config and inputs have passed their checks (the model and data are built), so a
    start that fails leaves a new run dir absent and an existing one untouched.
    """
    check_run_dir(run_dir.parent, run_dir.name, cfg, allow_config_change=allow_config_change)
    run_dir.mkdir(parents=True, exist_ok=True)
    stored_path = run_dir / CONFIG_FILE
    diffs = _stored_config_diffs(run_dir, cfg)
    if diffs:
        logger.warning(
            "resuming %s with a changed config (allow_config_change=true):\n  %s", run_dir, "\n  ".join(diffs[:30])
        )
        (run_dir / f"config.previous.{len(list(run_dir.glob('config.previous.*')))}.json").write_text(
            stored_path.read_text()
        )
    atomic_write_text(stored_path, json.dumps(cfg, indent=1, sort_keys=True, default=str))
    record_attempt(run_dir, overrides)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, DeferredRunLog) and handler.path.parent == run_dir:
            handler.start()
    return run_dir


def prepare_run_dir(runs_root: str | Path, run_name: str, cfg: dict[str, Any], *, allow_config_change: bool) -> Path:
    """:func:`check_run_dir` then :func:`claim_run_dir` (for callers with nothing to check in between)."""
    run_dir = check_run_dir(runs_root, run_name, cfg, allow_config_change=allow_config_change)
    return claim_run_dir(run_dir, cfg, allow_config_change=allow_config_change)


class DeferredRunLog(logging.Handler):
    """The run's ``train.log``: records wait in memory until :func:`claim_run_dir` starts the file, so a start
    that fails writes nothing into the run dir (its error reaches the console through the other handlers)."""

    MAX_BUFFERED = 10_000

    def __init__(self, path: Path):
        super().__init__()
        self.path = Path(path)
        self._buffer: list[logging.LogRecord] = []
        self._file: logging.FileHandler | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self._file is not None:
            self._file.emit(record)
        elif len(self._buffer) < self.MAX_BUFFERED:
            self._buffer.append(record)

    def start(self) -> None:
        if self._file is None:
            self._file = logging.FileHandler(self.path)
            self._file.setFormatter(self.formatter)
            for record in self._buffer:
                self._file.emit(record)
            self._buffer.clear()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        super().close()


@dataclass
class RunDir:
    """A finished (or running) train.py run dir, read back for evaluation: its config, history, initial model."""

    root: Path
    config: dict[str, Any]

    @classmethod
    def open(cls, root: str | Path) -> RunDir:
        root = Path(root)
        cfg = root / "config.json"
        if not cfg.is_file():
            raise FileNotFoundError(f"{cfg} is missing: {root} is not a train.py run dir")
        return cls(root, json.loads(cfg.read_text(encoding="utf-8")))

    @property
    def run_config(self) -> RunConfig:
        """The stored config, typed (data read back from the run dir: nothing in it is instantiated)."""
        return stored_run_config(self.config)

    @property
    def export_dir(self) -> Path:
        return self.root / "export"

    def history(self) -> list[dict[str, float]]:
        """The evaluation callback's records (``eval_metrics.jsonl``), else the training step records."""
        for name in ("eval_metrics.jsonl", "metrics.jsonl"):
            path = self.root / name
            if path.is_file():
                rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
                return [r for r in rows if "step" in r]
        return []

    def initial_model(self) -> SongBloomModel:
        """The weights the run started from, rebuilt exactly as train.py built them (same seed, same init)."""
        import lightning as L

        from songbloom.checkpoints.init_weights import build_model
        from songbloom.training.sketch_tables import run_recovered_codebook

        rc = self.run_config
        with torch.random.fork_rng(devices=[]):
            L.seed_everything(rc.seed, workers=True, verbose=False)
            model, _, _, _ = build_model(rc, recovered=run_recovered_codebook(rc))
        return model.eval()

    def held_out_batches(self, sb_cfg: SongBloomConfig, max_batches: int | None = None) -> list[Any]:
        """The run's validation batches (the demo's prepared data is reused, not rebuilt)."""
        from songbloom.training.data import build_datamodule

        rc = self.run_config
        data_cfg = rc.data
        if rc.demo.enabled and rc.demo.prepare_data:
            from songbloom.training.demo import prepare_demo_data

            data_cfg = prepare_demo_data(rc, sb_cfg)
        dm = build_datamodule(data_cfg, sb_cfg, seed=rc.seed)
        if hasattr(dm, "setup"):
            dm.setup("validate")
        return _take(dm.val_dataloader(), max_batches)


def _take(batches: Iterable[Any], n: int | None) -> list[Any]:
    out = []
    for i, b in enumerate(batches):
        if n is not None and i >= n:
            break
        out.append(b)
    return out
