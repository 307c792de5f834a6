"""Training inputs checked against each other before the first step.

Refused (:class:`InputMismatchError`, naming both sides and the fix):
- ``sketch.codebook_path`` that does not exist;
- a codebook whose hash is not the one the shards were tokenised with (``provenance.sketch.codebook_hash`` of
  the shard index);
- ``data.manifest`` whose songs are not those of the shard index (songs missing from either side).

Reported (warnings in the log): shards without a validation split, and what then selects checkpoints; gradient
accumulation capped by the number of batches in an epoch, with the effective batch (:class:`AccumulationCheck`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L

from songbloom.config.run import RunConfig

logger = logging.getLogger(__name__)

PREPROCESS_FIX = "python scripts/preprocess.py <manifest.jsonl> --out <shards_dir> --codebook <codebook> ..."


class InputMismatchError(ValueError):
    """Two training inputs that do not belong together; the message names both and the fix."""


def _index(shards_dir: str | None) -> dict[str, Any] | None:
    path = Path(shards_dir or "") / "index.json"
    if not shards_dir or not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def shards_codebook_hash(index: Mapping[str, Any] | None) -> str | None:
    sketch = ((index or {}).get("provenance") or {}).get("sketch") or {}
    return sketch.get("codebook_hash")


def check_codebook(codebook_path: str | None, shards_dir: str | None, index: Mapping[str, Any] | None) -> None:
    """The codebook file exists and, with shards, is the one they were tokenised with."""
    if not codebook_path:
        return
    want = shards_codebook_hash(index)
    shards_side = f"the shards in {shards_dir} were tokenised with codebook {want}" if want else "no shards"
    path = Path(codebook_path)
    if not path.is_file():
        raise InputMismatchError(
            f"sketch.codebook_path={codebook_path} does not exist ({shards_side}). Fix: pass the codebook file the "
            "shards were made with (sketch.codebook_path=<file>), or train one with `python -m songbloom.sketch "
            "train` and re-encode the shards with it"
        )
    if want is None:
        return
    from songbloom.sketch.artifact import read_codebook_metadata

    try:
        got = str(read_codebook_metadata(path)["codebook_hash"])
    except (OSError, ValueError, KeyError) as e:
        raise InputMismatchError(f"sketch.codebook_path={codebook_path} is not a readable codebook ({e}); "
                                 f"{shards_side}") from e
    if got != want:
        raise InputMismatchError(
            f"sketch.codebook_path={codebook_path} is codebook {got}, but {shards_side}: the sketch ids would mean "
            f"other sounds. Fix: pass the codebook with hash {want}, or re-encode the shards with this one "
            f"({PREPROCESS_FIX.replace('<codebook>', str(codebook_path))} --overwrite)"
        )


def _shard_songs(shards_dir: str, index: Mapping[str, Any]) -> set[str]:
    from songbloom.data.shards import completed_shards

    written = {str(i["idx"]) for side in completed_shards(shards_dir) for i in side["items"]}
    skipped = {str(s["idx"]) for s in (index.get("skipped") or {}).get("items", []) if s.get("idx")}
    return written | skipped


def check_manifest(manifest: str | None, shards_dir: str | None, index: Mapping[str, Any] | None) -> None:
    """Every song of ``data.manifest`` is in the shard index (written or reported skipped), and no other."""
    if not manifest or index is None or not Path(manifest).is_file():
        return
    from songbloom.data.manifest import read_manifest

    records, _ = read_manifest(manifest)
    listed = {r.idx for r in records}
    in_shards = _shard_songs(str(shards_dir), index)
    missing, extra = sorted(listed - in_shards), sorted(in_shards - listed)
    if not missing and not extra:
        return
    raise InputMismatchError(
        f"data.manifest={manifest} ({len(listed)} songs) does not match the shard index of {shards_dir} "
        f"({len(in_shards)} songs): {len(missing)} manifest songs are not in the shards {missing[:5]}, "
        f"{len(extra)} shard songs are not in the manifest {extra[:5]}. Fix: pass the manifest the shards were "
        f"made from, or encode this one ({PREPROCESS_FIX.replace('<manifest.jsonl>', str(manifest))}; a rerun "
        "adds the missing songs)"
    )


def report_validation(rc: RunConfig, shards_dir: str | None, index: Mapping[str, Any] | None) -> None:
    """Say what selects checkpoints when the shards hold no validation songs."""
    if index is None or (index.get("splits") or {}).get("val", {}).get("num_samples"):
        return
    ckpt = rc.callbacks.get("checkpoint") or {}
    every = int(ckpt.get("every_n_steps") or 0)
    kept = f"step=N.ckpt every {every} steps (the last {ckpt.get('keep_last')} kept)" if every else "no step files"
    logger.warning(
        "no validation songs in %s (preprocessed with --val-fraction 0 or from two songs): held-out metrics are "
        "off and checkpoints are selected by step only: last.ckpt and %s, none by validation loss",
        shards_dir,
        kept,
    )


class AccumulationCheck(L.Callback):
    """Warns when ``accumulate_grad_batches`` exceeds the batches of an epoch: Lightning then steps at the end
    of every epoch, so the effective batch is smaller than asked."""

    def __init__(self, batch_size: int | None):
        self.batch_size = batch_size

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        asked = int(trainer.accumulate_grad_batches)
        per_epoch = trainer.num_training_batches
        if not isinstance(per_epoch, int):  # a stream without a length: the datamodule knows its epoch
            per_epoch = getattr(trainer.datamodule, "batches_per_epoch", None)
        if asked <= 1 or not isinstance(per_epoch, int) or per_epoch >= asked:
            return
        bs = self.batch_size or 1
        world = int(trainer.world_size)
        logger.warning(
            "gradient accumulation is capped: trainer.accumulate_grad_batches=%d but an epoch has %d batches, so "
            "every optimizer step sees %d batches: effective batch %d (%d x batch size %d x %d ranks) instead of "
            "%d. Add songs, set data.batches_per_epoch >= %d, or lower trainer.accumulate_grad_batches",
            asked, per_epoch, per_epoch, per_epoch * bs * world, per_epoch, bs, world, asked * bs * world, asked,
        )  # fmt: skip


def check_run_inputs(rc: RunConfig, data_cfg: Mapping[str, Any]) -> list[L.Callback]:
    """Refuse inputs that do not belong together; returns the callbacks that report at training start."""
    shards_dir = data_cfg.get("shards_dir")
    index = _index(shards_dir)
    check_codebook(rc.sketch.codebook_path, shards_dir, index)
    check_manifest(data_cfg.get("manifest"), shards_dir, index)
    report_validation(rc, shards_dir, index)
    batch_size = data_cfg.get("batch_size")
    return [AccumulationCheck(int(batch_size) if batch_size else None)]
