"""Preprocessing under faults: a SIGKILLed parent, two array tasks in one folder, a damaged folder, exit codes.

Nothing is lost, duplicated or silently accepted: the workers of a killed run stop, the rerun gives exactly one
copy of every song, a second writer of the same task is refused, and ``--verify`` names what is wrong.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from collections import Counter
from pathlib import Path

import pytest

from songbloom.cli import preprocess as cli
from songbloom.data.manifest import read_manifest
from songbloom.data.preprocess import PreprocessConfig, run_preprocess
from songbloom.data.shards import completed_shards, iter_tar_samples, load_index
from songbloom.data.synthetic import make_synthetic_dataset
from tests.data.standins import toy_encoders
from tests.faults.preprocess_standin import SETTINGS

REPO = Path(__file__).resolve().parents[2]
N_SONGS = 100


@pytest.fixture(scope="module")
def songs(tmp_path_factory) -> Path:
    """100 short songs (1.2-1.8 s, one segment each)."""
    return make_synthetic_dataset(tmp_path_factory.mktemp("songs"), N_SONGS, min_seconds=1.2, max_seconds=1.8, seed=3)


def _start(manifest: Path, out: Path, task: int, tasks: int, workers: int, delay: float) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "tests.faults.preprocess_standin", str(manifest), str(out)]
    cmd += [str(task), str(tasks), str(workers), str(delay)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _alive(pid: int) -> bool:
    """Running (a zombie, dead but not reaped by its new parent, counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _spawned_children(pid: int) -> list[int]:
    """The multiprocessing workers whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rpartition(")")[2].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and b"spawn_main" in cmdline:
            found.append(int(stat.parent.name))
    return found


def _wait_for(cond, timeout: float, what: str, procs=()) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        for p in procs:
            if p.poll() is not None:
                _, err = p.communicate()
                pytest.fail(f"{what}: the run ended first (status {p.returncode}): {err[-3000:]}")
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)


def _copies_per_song(out: Path) -> Counter:
    """Samples per song in every tar of the folder (complete or not): what a reader globbing *.tar would get."""
    urls = sorted(str(p) for p in out.glob("*.tar"))
    return Counter(json.loads(raw["meta.json"])["idx"] for raw in iter_tar_samples(urls))


def _cli(capsys, *argv: str) -> tuple[int, dict]:
    capsys.readouterr()
    status = cli.main(list(argv))
    return status, json.loads(capsys.readouterr().out)


def _assert_one_copy_each(out: Path, manifest: Path) -> None:
    copies = _copies_per_song(out)
    expected = {r.idx for r in read_manifest(manifest)[0]}
    assert {k: n for k, n in copies.items() if n != 1} == {}, "songs with more than one copy"
    assert sorted(expected - set(copies)) == [], "songs missing"
    assert set(copies) == expected


def test_killed_parent_takes_its_workers_along_and_the_rerun_gives_one_copy_each(tmp_path, songs, capsys):
    out = tmp_path / "shards"
    proc = _start(songs, out, 0, 1, workers=2, delay=0.15)
    try:
        _wait_for(lambda: any(out.glob("*.tar.json")), 180, "a first complete shard", [proc])
        workers = _spawned_children(proc.pid)
        done = sum(s["count"] for s in completed_shards(out))
        assert len(workers) == 2 and 1 <= done < N_SONGS, (workers, done)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        orphans = [w for w in workers if _alive(w)]
        assert orphans == [], f"workers {orphans} still run 10 s after their parent was killed"
    finally:
        for pid in [proc.pid, *_spawned_children(proc.pid)]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        proc.wait()

    report = run_preprocess([songs], PreprocessConfig(out_dir=str(out), **SETTINGS), toy_encoders)
    assert report.problems == [] and report.landed == N_SONGS and report.skipped_existing >= done
    _assert_one_copy_each(out, songs)
    status, verdict = _cli(capsys, "--out", str(out), "--verify", str(songs))
    assert verdict.get("problems") == [] and status == 0, verdict
    assert sum(s["num_samples"] for s in load_index(out)["splits"].values()) == N_SONGS


def test_two_array_tasks_write_one_folder_at_once_and_a_second_writer_is_refused(tmp_path, songs, capsys):
    out = tmp_path / "shards"
    procs = [_start(songs, out, task, 2, workers=1, delay=0.02) for task in (0, 1)]
    try:
        both = lambda: any(out.glob("*-t0000-*.tar.json")) and any(out.glob("*-t0001-*.tar.json"))  # noqa: E731
        _wait_for(both, 180, "a complete shard of each task", procs)
        try:  # a second copy of task 0 (a requeued array task, say) while the first still writes
            run_preprocess([songs], PreprocessConfig(out_dir=str(out), **SETTINGS), toy_encoders, 0, 2)
            refused = ""
        except Exception as err:  # noqa: BLE001 - the message is what is checked
            refused = str(err)
        assert f"pid {procs[0].pid}" in refused and "task 0000" in refused, refused or "not refused"
        results = [p.communicate(timeout=300) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in results]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    _assert_one_copy_each(out, songs)
    assert sum(s["num_samples"] for s in load_index(out)["splits"].values()) == N_SONGS
    status, verdict = _cli(capsys, "--out", str(out), "--verify", str(songs))
    assert verdict.get("problems") == [] and status == 0, verdict
    assert not list((out / "locks").glob("*.lock")), "finished tasks release their locks"


def _rewrite_tar(path: Path, keep=lambda name: True, extra: dict[str, bytes] | None = None) -> None:
    with tarfile.open(path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar if keep(m.name)]
    with tarfile.open(path, "w") as tar:
        for m, data in members:
            tar.addfile(m, io.BytesIO(data))
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def small(tmp_path) -> tuple[Path, Path]:
    manifest = make_synthetic_dataset(tmp_path / "songs", 10, min_seconds=1.2, max_seconds=1.8, seed=4)
    out = tmp_path / "shards"
    cfg = PreprocessConfig(out_dir=str(out), segment_seconds=6.0, shard_maxcount=2, val_fraction=0.0)
    assert run_preprocess([manifest], cfg, toy_encoders).written == 10
    return manifest, out


def test_verify_names_a_missing_key_an_unexpected_member_a_duplicate_and_a_missing_item(small, capsys):
    manifest, out = small
    assert _cli(capsys, "--out", str(out), "--verify", str(manifest))[0] == 0
    sides = completed_shards(out)
    assert len(sides) == 5
    lost = sides[0]["items"][1]["key"]
    _rewrite_tar(out / sides[0]["shard"], keep=lambda name: not name.startswith(lost + "."))
    _rewrite_tar(out / sides[1]["shard"], extra={"run_me.sh": b"#!/bin/sh\n"})
    copy = out / sides[2]["shard"].replace("-000002", "-000099")
    shutil.copy(out / sides[2]["shard"], copy)
    shutil.copy(out / (sides[2]["shard"] + ".json"), copy.with_name(copy.name + ".json"))
    gone = [i["idx"] for i in sides[3]["items"]]
    for p in out.glob(sides[3]["shard"] + "*"):
        p.unlink()

    status, verdict = _cli(capsys, "--out", str(out), "--verify", str(manifest))
    found = {(p["kind"], p.get("key") or p.get("member") or p.get("idx")) for p in verdict.get("problems", [])}
    assert ("missing_key", lost) in found, verdict
    assert ("unexpected_member", "run_me.sh") in found, verdict
    assert {("duplicate", i["key"]) for i in sides[2]["items"]} <= found, verdict
    assert {("missing_item", idx) for idx in gone} <= found, verdict
    assert status == 1


def test_exit_status_counts_landed_and_skipped(tmp_path, small, capsys, monkeypatch):
    monkeypatch.setattr(cli, "EncoderSpec", lambda *args, **kwargs: toy_encoders)
    manifest, _ = small
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    for r in rows:
        r["audio_path"] = str(manifest.parent / r["audio_path"])
    broken = [{**r, "idx": r["idx"] + "-gone", "audio_path": str(tmp_path / "gone.wav")} for r in rows[:3]]
    all_bad, mixed = tmp_path / "all_bad.jsonl", tmp_path / "mixed.jsonl"
    all_bad.write_text("".join(json.dumps(r) + "\n" for r in broken))
    mixed.write_text("".join(json.dumps(r) + "\n" for r in rows[:2] + broken[:1]))
    common = ["--segment-seconds", "6", "--no-progress", "--lyrics-processor", "phoneme"]

    status, summary = _cli(capsys, str(all_bad), "--out", str(tmp_path / "a"), *common)
    assert (summary.get("landed_samples"), summary["skipped_by_kind"], status) == (0, {"missing_file": 3}, 1)
    status, summary = _cli(capsys, str(mixed), "--out", str(tmp_path / "m"), *common)
    assert (summary.get("landed_samples"), summary["skipped_count"], status) == (2, 1, 0)
    status, summary = _cli(capsys, str(mixed), "--out", str(tmp_path / "m"), *common, "--strict")
    assert (summary.get("landed_samples"), summary["written_samples"], status) == (2, 0, 3)


def _write_lock(out: Path, host: str, pid: int, heartbeat_age_s: float) -> None:
    (out / "locks").mkdir(parents=True, exist_ok=True)
    beat = time.time() - heartbeat_age_s
    lock = {"host": host, "pid": pid, "task_index": 0, "token": "old", "heartbeat": beat, "workers": []}
    (out / "locks" / "task-0000.lock").write_text(json.dumps(lock))


def test_a_stale_lock_is_taken_over_and_a_live_one_refused(small):
    manifest, out = small
    cfg = PreprocessConfig(out_dir=str(out), segment_seconds=6.0, shard_maxcount=2, val_fraction=0.0)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    for host, pid, age in [("elsewhere", 1, 5.0), (socket.gethostname(), os.getpid(), 5.0)]:  # live: refused
        _write_lock(out, host, pid, age)
        try:
            run_preprocess([manifest], cfg, toy_encoders)
            refused = ""
        except Exception as err:  # noqa: BLE001 - the message is what is checked
            refused = str(err)
        assert f"host {host} pid {pid}" in refused, refused or "not refused"
    for host, pid, age in [("elsewhere", 1, 1000.0), (socket.gethostname(), int(dead.stdout), 5.0)]:  # stale
        _write_lock(out, host, pid, age)
        assert run_preprocess([manifest], cfg, toy_encoders).landed == 10
        assert not (out / "locks" / "task-0000.lock").exists()
