"""Step checkpoints written atomically, with bounded retention, and the lookup used by auto-resume.

A checkpoint is first written to a hidden temporary name, fsynced, then renamed to ``step-NNNNNNN.ckpt`` (no
``=`` in the name, so the path passes unquoted as a Hydra override: ``ckpt_path=.../step-0000100.ckpt``; files
named ``step=NNNNNNN.ckpt`` by earlier versions are still found and pruned);
``last.ckpt`` is then an independent copy of it, swapped in by rename. A kill at any moment leaves either the
previous complete ``last.ckpt`` or the new one, never a partial file under a visible name, and damage to a step
file in place (a truncation, an overwrite) cannot reach ``last.ckpt`` (it was a hard link before: one file).

Resume rules (docs/training.md): candidates are ``last.ckpt``, the step files and legacy ``hpc_ckpt_*.ckpt``;
best-k files live apart in ``checkpoints/best/`` and are never candidates. Every candidate passes the integrity
check (:func:`songbloom.checkpoints.safe_load.check_file_integrity`) before it is used; a damaged one is
skipped and the log says which file was used instead; when the run dir holds checkpoints and none can be
loaded, the run is refused (:class:`NoUsableCheckpointError`) instead of starting over.

Pruning trusts only ``checkpoints/index.json`` (written atomically on every save): the step files this run
wrote. A file the run did not write is never deleted, and an attempt that did not resume from this run dir
(``resume=never``, a checkpoint from elsewhere) deletes only the files it wrote itself.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import lightning as L

from songbloom.checkpoints.messages import (
    FRESH_START_KEEPS_HISTORY,
    INDEX_UNREADABLE,
    NO_USABLE_CHECKPOINT,
    RESUME_FALLBACK,
    RESUME_FILE_MISSING,
)
from songbloom.checkpoints.safe_load import check_file_integrity, torch_load_safely
from songbloom.utils.atomic import atomic_write_json

logger = logging.getLogger(__name__)

STEP_PATTERN = re.compile(r"^step[-=](\d+)\.ckpt$")  # step-N (now), step=N (earlier versions)
LAST = "last.ckpt"
INDEX = "index.json"
BEST_DIR = "best"
"""Best-k checkpoints (on a validation metric) go to ``checkpoints/best/``: never pruned by step retention,
never picked by auto-resume (which continues the latest step, not the best one)."""


class NoUsableCheckpointError(RuntimeError):
    """The run dir holds checkpoints and none of them can be loaded: resume refuses to start over silently."""

    def __init__(self, ckpt_dir: Path, failures: dict[Path, str]):
        self.ckpt_dir = Path(ckpt_dir)
        self.failures = dict(failures)
        listing = "\n".join(f"  - {p}: {why}" for p, why in failures.items())
        super().__init__(NO_USABLE_CHECKPOINT.format(ckpt_dir=ckpt_dir, count=len(failures), listing=listing))


def best_checkpoint_dir(ckpt_dir: str | Path) -> Path:
    """Where best-k checkpoints are stored (see :data:`BEST_DIR`)."""
    return Path(ckpt_dir) / BEST_DIR


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def step_file_name(step: int) -> str:
    """``step-NNNNNNN.ckpt``: the name of a new step checkpoint."""
    return f"step-{int(step):07d}.ckpt"


def step_checkpoints(ckpt_dir: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of the step files, oldest first (both namings)."""
    out = []
    for p in Path(ckpt_dir).glob("step*.ckpt"):
        m = STEP_PATTERN.match(p.name)
        if m:
            out.append((int(m.group(1)), p))
    return sorted(out)


# ---------------------------------------------------------------------------------------------------- resume
def resume_candidates(ckpt_dir: Path, hpc_dir: Path | None = None) -> list[Path]:
    """``last.ckpt``, the step files (newest first) and Lightning's SLURM ``hpc_ckpt_*.ckpt``; never ``best/``."""
    ckpt_dir = Path(ckpt_dir)
    candidates = [ckpt_dir / LAST] if (ckpt_dir / LAST).is_file() else []
    candidates += [p for _, p in reversed(step_checkpoints(ckpt_dir))]
    if hpc_dir is not None:
        candidates += sorted(Path(hpc_dir).glob("hpc_ckpt_*.ckpt"))
    return candidates


def _reason(e: Exception) -> str:
    reason = getattr(e, "reason", None)
    if reason:
        return str(reason)
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[-1]}" if text else type(e).__name__


def _global_step(path: Path) -> int:
    obj = torch_load_safely(path)  # the cheap integrity check, then the pickle (tensors memory-mapped)
    if not isinstance(obj, dict) or "global_step" not in obj:
        raise ValueError("not a training checkpoint (no global_step)")
    return int(obj["global_step"])


def find_resume_checkpoint(ckpt_dir: Path, hpc_dir: Path | None = None) -> Path | None:
    """The intact checkpoint with the highest global step (``last.ckpt`` wins a tie), or None when there is none.

    Each candidate passes the cheap integrity check and its pickle loads; the chosen one also passes the CRC
    check (the next one down is tried when it fails). Skipped files are named in a warning with the file used.

    Raises:
        NoUsableCheckpointError: there are candidates and none can be loaded (the run must not start over).
    """
    failures: dict[Path, str] = {}
    ranked: list[tuple[int, int, Path]] = []
    for order, path in enumerate(resume_candidates(ckpt_dir, hpc_dir)):
        try:
            ranked.append((-_global_step(path), order, path))
        except Exception as e:  # damaged, unsafe or foreign: name it, try the others
            failures[path] = _reason(e)
    for neg_step, _, path in sorted(ranked):
        try:
            check_file_integrity(path, checksums=True)
        except Exception as e:
            failures[path] = _reason(e)
            continue
        if failures:
            skipped = "; ".join(f"{p} ({why})" for p, why in failures.items())
            logger.warning(RESUME_FALLBACK.format(skipped=skipped, path=path, step=-neg_step))
        return path
    if failures:
        raise NoUsableCheckpointError(Path(ckpt_dir), failures)
    return None


def checked_resume_file(path: str | Path) -> Path:
    """An explicit ``resume=<file>``: it exists and passes the full integrity check, or the run stops here."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(RESUME_FILE_MISSING.format(path=path))
    check_file_integrity(path, checksums=True)
    return path


# ----------------------------------------------------------------------------------------- index and pruning
def read_index(ckpt_dir: Path) -> dict[str, dict[str, Any]]:
    """``{file name: {"step": N, "attempt": id}}`` of the step files this run wrote (empty when unreadable)."""
    path = Path(ckpt_dir) / INDEX
    if not path.is_file():
        return {}
    try:
        files = json.loads(path.read_text(encoding="utf-8"))["files"]
        if not isinstance(files, dict):
            raise ValueError("'files' is not a mapping")
        return {str(k): dict(v) for k, v in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        logger.warning(INDEX_UNREADABLE.format(path=path, reason=_reason(e)))
        return {}


def _write_index(ckpt_dir: Path, files: dict[str, dict[str, Any]], last: dict[str, Any] | None) -> None:
    atomic_write_json(Path(ckpt_dir) / INDEX, {"format": 1, "files": files, "last": last})


def _prune(ckpt_dir: Path, files: dict[str, dict[str, Any]], keep_last: int, may_prune) -> None:
    """Delete all but the newest ``keep_last`` of the indexed step files that ``may_prune(entry)`` allows."""
    mine = sorted((int(e.get("step", -1)), name) for name, e in files.items() if may_prune(e))
    for _, name in mine[:-keep_last]:
        (Path(ckpt_dir) / name).unlink(missing_ok=True)
        files.pop(name, None)


def _copy_file(src: Path, dst: Path) -> None:
    """Copy in the kernel (``copy_file_range``: a copy-on-write clone on btrfs/XFS, a server-side copy on NFS
    4.2, an in-kernel copy elsewhere); a plain copy when the file system refuses it."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        left = os.fstat(fin.fileno()).st_size
        try:
            while left > 0:
                n = os.copy_file_range(fin.fileno(), fout.fileno(), left)
                if n <= 0:
                    break
                left -= n
        except (OSError, AttributeError):
            left = -1
    if left != 0:
        shutil.copyfile(src, dst)


def _copy_to_last(final: Path) -> None:
    """``last.ckpt`` as an independent copy of ``final`` (temp file, fsync, rename)."""
    tmp = final.parent / f".{LAST}.tmp"
    tmp.unlink(missing_ok=True)
    _copy_file(final, tmp)
    _fsync_file(tmp)
    os.replace(tmp, final.parent / LAST)


def write_step_checkpoint(
    trainer: L.Trainer,
    ckpt_dir: Path,
    step: int,
    *,
    keep_last: int | None = None,
    attempt: str | None = None,
    prune_earlier: bool = False,
) -> Path:
    """Write ``step-N.ckpt`` atomically (temp file, fsync, rename), copy it to ``last.ckpt``, list it in the
    index under ``attempt``, prune to ``keep_last``, then wait for every rank. Pruning deletes only indexed files:
    those of this ``attempt``, and those of earlier attempts when ``prune_earlier`` (the attempt resumed from
    this run dir). A kill at any moment leaves the previous ``last.ckpt`` intact (tests/faults/injection.py)."""
    ckpt_dir = Path(ckpt_dir)
    final = ckpt_dir / step_file_name(step)
    tmp = ckpt_dir / f".{final.name}.tmp"
    if trainer.is_global_zero:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(tmp, weights_only=False)  # full state: optimizer, loops, RNG (resume needs them)
    if trainer.is_global_zero:
        _fsync_file(tmp)
        os.replace(tmp, final)
        _copy_to_last(final)
        files = read_index(ckpt_dir)
        files[final.name] = {"step": int(step), "attempt": attempt}
        if keep_last:
            _prune(ckpt_dir, files, keep_last, lambda e: prune_earlier or (attempt and e.get("attempt") == attempt))
        _write_index(ckpt_dir, files, {"step": int(step), "copy_of": final.name})
        _fsync_dir(ckpt_dir)
        logger.info("checkpoint %s", final)
    trainer.strategy.barrier("songbloom_checkpoint")
    return final


def resumed_from_run_dir(trainer: L.Trainer, ckpt_dir: Path) -> bool:
    """Whether this attempt resumed from a checkpoint of this run dir (its folder, or the run dir for hpc files)."""
    ckpt_path = getattr(trainer, "ckpt_path", None)
    if not ckpt_path:
        return False
    parent = Path(ckpt_path).resolve().parent
    return parent in (Path(ckpt_dir).resolve(), Path(ckpt_dir).resolve().parent)


class AtomicStepCheckpoint(L.Callback):
    """Save every ``every_n_steps`` optimizer steps and at the end; keep the newest ``keep_last``."""

    def __init__(
        self,
        ckpt_dir: str | Path,
        every_n_steps: int,
        keep_last: int = 3,
        save_at_end: bool = True,
    ):
        self.ckpt_dir = Path(ckpt_dir)
        self.every_n_steps = int(every_n_steps)
        self.keep_last = max(int(keep_last), 1)
        self.save_at_end = save_at_end
        self._last_saved_step = -1
        self.attempt = uuid.uuid4().hex[:12]  # this process's files in the index (what it may always prune)
        self.prune_earlier = False  # set at the start of training: earlier attempts' files too?

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Decide what this attempt may prune; remove temp files a killed save left behind (they can be as
        large as a whole checkpoint)."""
        self.prune_earlier = resumed_from_run_dir(trainer, self.ckpt_dir)
        if not trainer.is_global_zero or not self.ckpt_dir.is_dir():
            return
        earlier = [n for n in read_index(self.ckpt_dir) if (self.ckpt_dir / n).is_file()]
        if earlier and not self.prune_earlier:
            logger.warning(FRESH_START_KEEPS_HISTORY.format(ckpt_dir=self.ckpt_dir, names=", ".join(sorted(earlier))))
        stale = [".step=*.ckpt.tmp", ".step-*.ckpt.tmp", f".{LAST}.tmp", f".{INDEX}.*.tmp"]
        for path in [p for pattern in stale for p in self.ckpt_dir.glob(pattern)]:
            logger.warning("removing %s, left by a save that was interrupted", path)
            path.unlink(missing_ok=True)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if self.every_n_steps > 0 and step > 0 and step % self.every_n_steps == 0 and step != self._last_saved_step:
            self.save(trainer, step)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.save_at_end and trainer.global_step != self._last_saved_step:
            self.save(trainer, trainer.global_step)

    def save(self, trainer: L.Trainer, step: int) -> Path:
        final = write_step_checkpoint(
            trainer,
            self.ckpt_dir,
            step,
            keep_last=self.keep_last,
            attempt=self.attempt,
            prune_earlier=self.prune_earlier,
        )
        self._last_saved_step = step
        return final
