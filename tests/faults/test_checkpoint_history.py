"""Training never discards history silently, and a failed start claims nothing (docs/training.md, resume rules).

- every checkpoint of a run dir unreadable (garbage, cut short, refused as unsafe): the run is refused with each
  file and why, and nothing is written or pruned;
- ``last.ckpt`` truncated in place: resume falls back to the newest intact step file and says so;
- a step file damaged in place does not damage ``last.ckpt`` (it used to be a hard link to it);
- pruning deletes only files the run wrote;
- a start that fails (a missing input, a missing ``resume=`` file) leaves the run dir absent or untouched, so the
  corrected rerun starts cleanly (it used to find the failed start's config.json and refuse with
  ConfigChangedError).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import SimpleNamespace

import torch

from songbloom.training.checkpointing import AtomicStepCheckpoint, step_checkpoints
from tests.training.conftest import TINY_CPU, compose_config, run_flat


class NotAWeight:
    """A pickled object that ``weights_only=True`` refuses (a checkpoint "refused as unsafe")."""


def _overrides(root: Path, *extra: str, steps: int = 3, every: int = 1, keep: int = 5) -> list[str]:
    return [
        f"paths.root_dir={root}",
        *TINY_CPU,
        "data.num_songs=8",
        f"trainer.max_steps={steps}",
        f"callbacks.checkpoint.every_n_steps={every}",
        f"callbacks.checkpoint.keep_last={keep}",
        "run_name=history",
        *extra,
    ]


def _failure(overrides: list[str]) -> Exception | None:
    """The exception the run raised, or None when it ran."""
    try:
        run_flat(compose_config(overrides))
    except Exception as e:  # noqa: BLE001 - which error is the test's to check
        return e
    return None


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _loads(path: Path) -> bool:
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any reader error means damaged
        return False
    return True


def _truncate_in_place(path: Path) -> None:
    with open(path, "r+b") as f:  # the same inode, as a full disk or a crashed copy leaves it
        f.truncate(path.stat().st_size // 2)


def test_all_checkpoints_unreadable_is_refused_and_nothing_is_pruned(tmp_path: Path):
    run_flat(compose_config(_overrides(tmp_path)))
    run_dir = tmp_path / "outputs" / "runs" / "history"
    ck = run_dir / "checkpoints"
    names = ["last.ckpt", "step-0000001.ckpt", "step-0000002.ckpt", "step-0000003.ckpt"]
    assert sorted(p.name for p in ck.glob("*.ckpt")) == names
    for name in names:
        (ck / name).unlink()  # a fresh inode each (no hard link carries one damage to another file)
    (ck / "last.ckpt").write_bytes(os.urandom(4096))
    (ck / "step-0000001.ckpt").write_bytes(b"")
    torch.save({"global_step": 2, "state_dict": {}}, ck / "step-0000002.ckpt")
    _truncate_in_place(ck / "step-0000002.ckpt")
    torch.save({"global_step": 3, "obj": NotAWeight()}, ck / "step-0000003.ckpt")
    before = _snapshot(run_dir)

    # One more step than the finished run (a finished run of the same config has nothing to do and reads none).
    err = _failure(_overrides(tmp_path, "allow_config_change=true", steps=4))

    assert err is not None, "a run dir whose checkpoints are all unreadable was started over from step 0"
    message = str(err)
    for name in names:
        assert str(ck / name) in message, (name, message)
    assert "resume=never" in message and "resume=<path" in message, message
    assert _snapshot(run_dir) == before  # nothing pruned, overwritten or appended (not even train.log)


def test_truncated_last_ckpt_falls_back_to_the_newest_intact_step_file(tmp_path: Path, caplog):
    run_flat(compose_config(_overrides(tmp_path, steps=4, every=2, keep=3)))
    run_dir = tmp_path / "outputs" / "runs" / "history"
    ck = run_dir / "checkpoints"
    _truncate_in_place(ck / "last.ckpt")

    with caplog.at_level(logging.WARNING):  # two more steps than the first attempt
        resumed = run_flat(compose_config(_overrides(tmp_path, "allow_config_change=true", steps=6, every=2, keep=3)))

    assert resumed["resumed_from"] == str(ck / "step-0000004.ckpt"), resumed["resumed_from"]
    said = [r.getMessage() for r in caplog.records if str(ck / "last.ckpt") in r.getMessage()]
    assert any(f"resuming from {ck / 'step-0000004.ckpt'}" in m for m in said), caplog.text[-3000:]
    assert resumed["steps"] == 6  # steps 5 and 6 trained on top of step 4
    assert torch.load(ck / "last.ckpt", map_location="cpu", weights_only=True)["global_step"] == 6


def _fake_trainer() -> SimpleNamespace:
    """What a save needs of a Trainer: rank 0, the step, a checkpoint writer and a barrier."""
    trainer = SimpleNamespace(is_global_zero=True, global_step=0, ckpt_path=None)
    trainer.strategy = SimpleNamespace(barrier=lambda *a, **k: None)
    trainer.save_checkpoint = lambda path, *a, **k: torch.save(
        {"global_step": trainer.global_step, "state_dict": {"w": torch.randn(256)}}, path
    )
    return trainer


def _save(cb: AtomicStepCheckpoint, trainer: SimpleNamespace, step: int) -> None:
    trainer.global_step = step
    cb.save(trainer, step)


def test_a_damaged_step_file_does_not_damage_last_ckpt(tmp_path: Path):
    cb, trainer = AtomicStepCheckpoint(tmp_path, every_n_steps=1, keep_last=3), _fake_trainer()
    _save(cb, trainer, 1)
    _truncate_in_place(tmp_path / "step-0000001.ckpt")
    assert not _loads(tmp_path / "step-0000001.ckpt")
    assert _loads(tmp_path / "last.ckpt"), "truncating the step file also truncated last.ckpt"


def test_pruning_leaves_files_the_run_did_not_write(tmp_path: Path):
    kept_by_user = tmp_path / "step=0000001.ckpt"  # e.g. copied in by hand to keep a starting point
    torch.save({"global_step": 1, "state_dict": {}}, kept_by_user)
    cb, trainer = AtomicStepCheckpoint(tmp_path, every_n_steps=1, keep_last=2), _fake_trainer()
    for step in (2, 3, 4, 5):
        _save(cb, trainer, step)
    assert kept_by_user.is_file(), "pruning deleted a file this run did not write"
    assert [s for s, _ in step_checkpoints(tmp_path)] == [1, 4, 5]  # the run's own older files are pruned


def test_a_failed_start_claims_nothing_and_the_corrected_rerun_starts(tmp_path: Path):
    run_dir = tmp_path / "outputs" / "runs" / "history"
    missing_shards = [o for o in TINY_CPU if not o.startswith("data.")] + [
        "data=shards",
        f"data.shards_dir={tmp_path / 'no_shards_here'}",
    ]
    err = _failure([f"paths.root_dir={tmp_path}", *missing_shards, "run_name=history"])
    assert err is not None and "no_shards_here" in str(err), err
    assert not run_dir.exists(), sorted(str(p) for p in run_dir.rglob("*"))

    corrected = run_flat(compose_config(_overrides(tmp_path, steps=1)))  # the rerun with the input fixed
    assert corrected["steps"] == 1 and corrected["run_dir"] == str(run_dir)

    # An existing run dir stays byte-for-byte untouched by a start that fails (here: a resume file that is not there).
    before = _snapshot(run_dir)
    err = _failure(_overrides(tmp_path, f"resume={tmp_path / 'elsewhere.ckpt'}", steps=1))
    assert err is not None and "elsewhere.ckpt" in str(err), err
    assert _snapshot(run_dir) == before
