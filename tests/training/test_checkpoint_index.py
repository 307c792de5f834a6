"""The checkpoint index and the resume rules beside the fault tests (tests/faults/test_checkpoint_history.py):
best-k files are never resume candidates, a fresh attempt keeps earlier attempts' files, an unreadable index
prunes nothing, and a run dir with no loadable checkpoint is refused with each file and why."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from songbloom.training.checkpointing import (
    INDEX,
    AtomicStepCheckpoint,
    NoUsableCheckpointError,
    best_checkpoint_dir,
    find_resume_checkpoint,
    read_index,
    step_checkpoints,
)


def _trainer(ckpt_path: Path | None = None) -> SimpleNamespace:
    trainer = SimpleNamespace(is_global_zero=True, global_step=0, ckpt_path=ckpt_path)
    trainer.strategy = SimpleNamespace(barrier=lambda *a, **k: None)
    trainer.save_checkpoint = lambda path, *a, **k: torch.save({"global_step": trainer.global_step}, path)
    return trainer


def _attempt(ckpt_dir: Path, steps: list[int], keep_last: int, ckpt_path: Path | None = None):
    """One training attempt: a new checkpointer, its train start, then saves at ``steps``."""
    cb, trainer = AtomicStepCheckpoint(ckpt_dir, every_n_steps=1, keep_last=keep_last), _trainer(ckpt_path)
    cb.on_train_start(trainer, None)
    for step in steps:
        trainer.global_step = step
        cb.save(trainer, step)
    return cb


def _steps(ckpt_dir: Path) -> list[int]:
    return [s for s, _ in step_checkpoints(ckpt_dir)]


def test_best_k_files_are_never_resume_candidates_nor_pruned(tmp_path: Path):
    _attempt(tmp_path, [1, 2], keep_last=1)
    best = best_checkpoint_dir(tmp_path)
    best.mkdir()
    torch.save({"global_step": 9}, best / "step=0000009.ckpt")  # a better-scoring, later file: still not resumed
    assert find_resume_checkpoint(tmp_path) == tmp_path / "last.ckpt"
    _attempt(tmp_path, [3, 4], keep_last=1, ckpt_path=tmp_path / "last.ckpt")
    assert _steps(tmp_path) == [4] and (best / "step=0000009.ckpt").is_file()


def test_a_fresh_attempt_keeps_earlier_attempts_files(tmp_path: Path, caplog):
    _attempt(tmp_path, [1, 2], keep_last=5)
    with caplog.at_level(logging.WARNING):
        _attempt(tmp_path, [3, 4, 5], keep_last=1)  # resume=never: it loaded none of the earlier files
    assert _steps(tmp_path) == [1, 2, 5]
    assert "they are kept" in caplog.text
    _attempt(tmp_path, [6], keep_last=1, ckpt_path=tmp_path / "last.ckpt")  # resumed from this run dir
    assert _steps(tmp_path) == [6]
    assert set(read_index(tmp_path)) == {"step-0000006.ckpt"}


def test_an_unreadable_index_prunes_nothing_it_cannot_vouch_for(tmp_path: Path, caplog):
    _attempt(tmp_path, [1, 2], keep_last=5)
    (tmp_path / INDEX).write_text("{not json")
    with caplog.at_level(logging.WARNING):
        _attempt(tmp_path, [3, 4], keep_last=1, ckpt_path=tmp_path / "last.ckpt")
    assert _steps(tmp_path) == [1, 2, 4]
    assert "unreadable checkpoint index" in caplog.text


def test_no_loadable_checkpoint_is_refused_with_each_file_and_why(tmp_path: Path):
    assert find_resume_checkpoint(tmp_path) is None  # an empty run dir starts from step 0
    (tmp_path / "last.ckpt").write_bytes(b"\0" * 100)
    torch.save({"state_dict": {}}, tmp_path / "step=0000003.ckpt")  # loads, but is not a training checkpoint
    with pytest.raises(NoUsableCheckpointError) as info:
        find_resume_checkpoint(tmp_path)
    assert set(info.value.failures) == {tmp_path / "last.ckpt", tmp_path / "step=0000003.ckpt"}
    assert "damaged file" not in info.value.failures[tmp_path / "last.ckpt"]  # the reason alone
    assert "not a complete zip archive" in info.value.failures[tmp_path / "last.ckpt"]
    assert "no global_step" in str(info.value) and "resume=never" in str(info.value)
