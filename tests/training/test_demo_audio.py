"""Demo songs during training (songbloom.training.demo_callback): W&B offline media, A/B against the base model,
time box, failures that never stop training, and a resumed run that continues the same W&B run."""

from __future__ import annotations

import json
import logging
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from songbloom.training import demo_callback as demo_audio_module
from songbloom.training.callbacks import read_step_metrics
from songbloom.training.demo_callback import DemoAudioCallback
from songbloom.training.logging_callbacks import LogLineProgress, progress_bar
from tests.training.conftest import TINY_CPU, compose_config, run_flat

DEMO = [
    "callbacks.demo_audio.enabled=true",
    "callbacks.demo_audio.seconds=1.0",
    "callbacks.demo_audio.num_items=2",
    "callbacks.demo_audio.sampling.steps=4",
]


def read_wandb_records(path: Path) -> list:
    """Records of a ``.wandb`` transaction log (leveldb-style 32 KiB blocks of CRC/length/type + protobuf)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    block, pos, buf, out = 32768, 7, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pos += 7
        if kind == 0 and length == 0:  # zero padding to the end of the block
            pos += left - 7
            continue
        buf += data[pos : pos + length]
        pos += length
        if kind in (1, 4):  # FULL or LAST
            rec = pb.Record()
            rec.ParseFromString(buf)
            out.append(rec)
            buf = b""
    return out


def wandb_history(run_dir: Path) -> tuple[list[Path], list[dict[str, str]], set[str]]:
    """(offline run folders, history rows as {key: json value}, run ids) of a run dir's W&B data."""
    folders = sorted((run_dir / "wandb").glob("offline-run-*"))
    rows, ids = [], set()
    for folder in folders:
        for rec in read_wandb_records(next(folder.glob("*.wandb"))):
            kind = rec.WhichOneof("record_type")
            if kind == "run":
                ids.add(rec.run.run_id)
            elif kind == "history":
                rows.append({(i.key or "/".join(i.nested_key)): i.value_json for i in rec.history.item})
    return folders, rows, ids


def audio(path: Path) -> np.ndarray:
    return sf.read(str(path), dtype="float32")[0]


def demo_callback(result) -> DemoAudioCallback:
    cbs = [c for c in result["_lit_module"].trainer.callbacks if isinstance(c, DemoAudioCallback)]
    assert len(cbs) == 1
    return cbs[0]


@pytest.fixture(scope="module")
def lora_wandb_run(tmp_path_factory):
    """Two LoRA steps at a high LR (so the adapters surely move), the sketch embedding trained in full, W&B."""
    root = tmp_path_factory.mktemp("lora_wandb")
    cfg = compose_config(
        [
            f"paths.root_dir={root}",
            *TINY_CPU,
            *DEMO,
            "logger=wandb",
            "lora=lm_attn",
            "trainable.sketch_embedding=true",
            "training.optim.lr=0.05",
            "trainer.max_steps=2",
            "callbacks.demo_audio.every_n_steps=2",
            "callbacks.lr_monitor.enabled=true",
        ]
    )
    return run_flat(cfg)


def test_wandb_offline_run_holds_scalars_and_ab_demo_media(lora_wandb_run):
    run_dir = Path(lora_wandb_run["run_dir"])
    run_id = (run_dir / "wandb_id.txt").read_text().strip()
    folders, rows, ids = wandb_history(run_dir)
    assert len(folders) == 1 and ids == {run_id}
    keys = set().union(*rows)
    for scalar in ("train/loss", "train/lr", "train/tokens_per_s", "train/audio_seconds_per_s", "demo/seconds"):
        assert scalar in keys, f"{scalar} not logged; logged: {sorted(keys)}"
    assert any(k.startswith("lr-") for k in keys)  # Lightning's per-group monitor (callbacks.lr_monitor=true)
    media_dir = folders[0] / "files"
    for step in (0, 2):
        row = next(r for r in rows if r.get("trainer/global_step") == str(step) and "demo/model_0/_type" in r)
        for which in ("model", "base"):
            for i in (0, 1):
                assert json.loads(row[f"demo/{which}_{i}/_type"]) == "audio-file"
                assert json.loads(row[f"demo/{which}_{i}_mel/_type"]) == "image-file"
                assert (media_dir / json.loads(row[f"demo/{which}_{i}/path"])).is_file()
                assert (media_dir / json.loads(row[f"demo/{which}_{i}_mel/path"])).is_file()
        assert json.loads(row["demo/table/_type"]) == "table-file"
    assert list((media_dir / "media" / "audio").rglob("*.wav"))
    assert list((media_dir / "media" / "images").rglob("*.png"))
    # The same songs also sit in the run dir, with lyrics and seeds beside them.
    index = json.loads((run_dir / "demos" / "step_000002" / "index.json").read_text())
    assert [it["seed"] for it in index["items"]] == [0, 1] and all(it["lyrics"] for it in index["items"])
    import matplotlib.image

    assert matplotlib.image.imread(str(run_dir / "demos" / "step_000002" / "base_1.png")).ndim == 3


def test_lora_base_equals_model_at_step_0_and_differs_after_training(lora_wandb_run):
    run_dir = Path(lora_wandb_run["run_dir"])
    step0, step2 = run_dir / "demos" / "step_000000", run_dir / "demos" / "step_000002"
    index0 = json.loads((step0 / "index.json").read_text())
    assert any(it["model_frames"] > 0 for it in index0["items"])  # real songs, not the empty EOS-first output
    for i in (0, 1):
        # Zero-initialised adapters: the base (adapters off, full tensors reset) is the model, bit for bit.
        np.testing.assert_array_equal(audio(step0 / f"model_{i}.wav"), audio(step0 / f"base_{i}.wav"))
        np.testing.assert_array_equal(audio(step0 / f"base_{i}.wav"), audio(step2 / f"base_{i}.wav"))
    assert any(
        audio(step2 / f"model_{i}.wav").shape != audio(step2 / f"base_{i}.wav").shape
        or not np.array_equal(audio(step2 / f"model_{i}.wav"), audio(step2 / f"base_{i}.wav"))
        for i in (0, 1)
    )


def test_base_weights_regenerate_the_step_0_song_after_training(lora_wandb_run):
    """Generating the base now, with trained adapters and a trained sketch embedding in the model, must give
    the song cached at step 0: adapters really off, the fully-trained tensor really put back."""
    import time

    lit = lora_wandb_run["_lit_module"]
    cb = demo_callback(lora_wandb_run)
    assert cb._full_tensors and "skeleton_emb.weight" in cb._full_tensors
    trained = dict(lit.model.named_parameters())["skeleton_emb.weight"].detach()
    assert not trained.equal(cb._full_tensors["skeleton_emb.weight"])  # it did train
    item = cb.items[0]
    pipe = cb._pipeline(lit.model, lit.device)
    lit.model.eval()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as during the run (num_threads=1): the same kernels, so the same floats
    try:
        base = cb._generate(lit.trainer, lit, pipe, lit.model, item, "base", time.monotonic(), 1e9).audio
        model = cb._generate(lit.trainer, lit, pipe, lit.model, item, "model", time.monotonic(), 1e9).audio
    finally:
        torch.set_num_threads(threads)
    demos = Path(lora_wandb_run["run_dir"]) / "demos"
    np.testing.assert_array_equal(base.T.numpy(), audio(demos / "step_000000" / "base_0.wav"))
    assert dict(lit.model.named_parameters())["skeleton_emb.weight"].detach().equal(trained)  # restored
    np.testing.assert_array_equal(model.T.numpy(), audio(demos / "step_000002" / "model_0.wav"))


def _quick_run(tmp_path: Path, extra: list[str]):
    cfg = compose_config([f"paths.root_dir={tmp_path}", *TINY_CPU, *DEMO, "trainer.max_steps=2", *extra])
    return run_flat(cfg)


def test_a_failing_demo_never_stops_training(tmp_path, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("sampler exploded")

    monkeypatch.setattr(DemoAudioCallback, "_generate", broken)
    with caplog.at_level(logging.WARNING, logger="songbloom.training.demo_callback"):
        result = _quick_run(tmp_path, ["callbacks.demo_audio.every_n_steps=1", "callbacks.demo_audio.at_end=false"])
    run_dir = Path(result["run_dir"])
    assert sorted(read_step_metrics(run_dir / "metrics.jsonl")) == [1, 2]
    history = demo_callback(result).history
    assert [h["step"] for h in history] == [0, 1, 2]
    assert all("sampler exploded" in h["error"] for h in history)
    assert "training goes on" in caplog.text and "sampler exploded" in caplog.text


def test_time_box_abandons_a_long_song_and_skips_the_rest(tmp_path, monkeypatch, caplog):
    # One "second" per look at the clock: the round starts at 0, the first song at 2, and the sampler's
    # progress hook looks at 3 > 2.5 s after the first patch, so the song is abandoned mid-way.
    ticks = iter(range(10**6))
    monkeypatch.setattr(demo_audio_module, "_clock", lambda: float(next(ticks)))
    with caplog.at_level(logging.WARNING, logger="songbloom.training.demo_callback"):
        result = _quick_run(
            tmp_path,
            ["callbacks.demo_audio.every_n_steps=100", "callbacks.demo_audio.at_end=false",
             "callbacks.demo_audio.time_budget_s=2.5", "callbacks.demo_audio.base=false"],
        )
    assert sorted(read_step_metrics(Path(result["run_dir"]) / "metrics.jsonl")) == [1, 2]
    (record,) = demo_callback(result).history
    assert record["songs"] == 0 and record["skipped"] == 2
    assert "time budget 2.5 s ran out during song 1/2" in record["reason"]
    assert "shortened" in caplog.text
    index = json.loads((Path(result["run_dir"]) / "demos" / "step_000000" / "index.json").read_text())
    assert index["reason"] == record["reason"]


def test_time_box_skips_songs_that_would_not_fit(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="songbloom.training.demo_callback"):
        result = _quick_run(
            tmp_path,
            ["callbacks.demo_audio.every_n_steps=100", "callbacks.demo_audio.at_end=false",
             "callbacks.demo_audio.time_budget_s=0", "callbacks.demo_audio.base=false"],
        )
    (record,) = demo_callback(result).history
    assert record["songs"] == 0 and record["skipped"] == 2 and "after 0/2 songs" in record["reason"]


def test_a_preemption_signal_stops_the_round(tmp_path, monkeypatch):
    """SLURM's warning signal must not wait for demo songs: the round stops and the checkpoint comes first."""
    calls = {"n": 0}

    def pending(trainer) -> bool:
        calls["n"] += 1
        return calls["n"] > 1  # the signal arrives while the first song is being sampled

    monkeypatch.setattr(demo_audio_module, "preemption_pending", pending)
    result = _quick_run(tmp_path, ["callbacks.demo_audio.every_n_steps=100", "callbacks.demo_audio.at_end=false",
                                   "callbacks.demo_audio.base=false"])
    (record,) = demo_callback(result).history
    assert record["songs"] == 0 and "a preemption signal arrived during song 1/2" in record["reason"]


def test_preemption_pending_reads_the_preemption_callbacks_flags(tmp_path):
    import signal
    from types import SimpleNamespace

    from songbloom.training.preemption import PreemptionCheckpoint

    cb = PreemptionCheckpoint(tmp_path)
    trainer = SimpleNamespace(callbacks=[object(), cb])
    assert not demo_audio_module.preemption_pending(trainer)
    cb._on_signal(signal.SIGUSR1, None)  # what its signal handler does
    assert demo_audio_module.preemption_pending(trainer)


def test_full_finetune_resume_continues_the_wandb_run_and_reuses_the_base_songs(tmp_path):
    common = ["logger=wandb", "callbacks.demo_audio.every_n_steps=2",
              "callbacks.checkpoint.every_n_steps=2", "callbacks.demo_audio.num_items=1"]
    first = _quick_run(tmp_path, common)  # _quick_run adds DEMO
    run_dir = Path(first["run_dir"])
    run_id = (run_dir / "wandb_id.txt").read_text().strip()
    second = run_flat(compose_config([f"paths.root_dir={tmp_path}", *TINY_CPU, *DEMO, *common, "trainer.max_steps=4",
                                 f"run_name={run_dir.name}", "allow_config_change=true"]))
    assert second["run_dir"] == str(run_dir) and second["resumed_from"]
    folders, rows, ids = wandb_history(run_dir)
    # Offline mode writes one folder per process; both carry the same run id, so `wandb sync` appends the
    # resumed part to the same W&B run (synced in start-time order). When both processes start in the same
    # second, W&B names the second folder with a "-1" suffix, which still sorts after the first.
    named_for_run = re.compile(rf"offline-run-\d{{8}}_\d{{6}}-{run_id}(-\d+)?")
    assert len(folders) == 2 and ids == {run_id} and all(named_for_run.fullmatch(f.name) for f in folders)
    steps = [[int(r["trainer/global_step"]) for r in rows_of(f) if "train/loss" in r] for f in folders]
    assert steps[0] == [0, 1] and steps[1] == [2, 3]  # Lightning logs a step's loss at the step it began
    # The base songs were made at step 0 (the model before training) and re-used after the resume.
    demos = run_dir / "demos"
    np.testing.assert_array_equal(audio(demos / "step_000000" / "model_0.wav"), audio(demos / "base" / "base_0.wav"))
    np.testing.assert_array_equal(audio(demos / "step_000004" / "base_0.wav"), audio(demos / "base" / "base_0.wav"))
    history = demo_callback(second).history
    assert [h["step"] for h in history] == [4] and history[0]["songs"] == 1  # the model only: base from cache


def rows_of(folder: Path) -> list[dict[str, str]]:
    out = []
    for rec in read_wandb_records(next(folder.glob("*.wandb"))):
        if rec.WhichOneof("record_type") == "history":
            out.append({(i.key or "/".join(i.nested_key)): i.value_json for i in rec.history.item})
    return out


def test_demo_settings_are_not_part_of_the_run_identity():
    from songbloom.training.run import to_container
    from songbloom.training.run_dir import default_run_name

    a = to_container(compose_config([*TINY_CPU, *DEMO]))
    b = to_container(compose_config([*TINY_CPU, *DEMO, "callbacks.demo_audio.every_n_steps=7",
                                     "callbacks.progress_bar.style=tqdm", "callbacks.lr_monitor.enabled=true"]))
    assert a["callbacks"]["demo_audio"] != b["callbacks"]["demo_audio"]
    assert default_run_name(a) == default_run_name(b)  # a requeue with other demo settings resumes the same run


def test_demo_written_to_the_run_dir_without_wandb(tmp_path):
    result = _quick_run(tmp_path, ["logger=csv", "callbacks.demo_audio.every_n_steps=2",
                                   "callbacks.demo_audio.num_items=1", "callbacks.demo_audio.at_end=false"])
    run_dir = Path(result["run_dir"])
    assert not (run_dir / "wandb").exists()
    for step in ("step_000000", "step_000002"):
        for name in ("model_0.wav", "model_0.png", "base_0.wav", "base_0.png", "index.json"):
            assert (run_dir / "demos" / step / name).is_file(), f"{step}/{name} missing"
    # Full fine-tuning: the base is the step-0 model, made once and shown beside every later round.
    np.testing.assert_array_equal(audio(run_dir / "demos/step_000002/base_0.wav"),
                                  audio(run_dir / "demos/step_000000/model_0.wav"))
    assert sf.info(str(run_dir / "demos/step_000002/model_0.wav")).subtype == "FLOAT"
    header = next(iter((run_dir / "csv").rglob("metrics.csv"))).read_text().splitlines()[0].split(",")
    assert "demo/seconds" in header and "demo/songs" in header


def test_configured_demo_items_with_lyrics_and_a_prompt(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import songbloom.text.g2p
    from songbloom.config import SongBloomConfig
    from songbloom.training.demo_settings import DemoAudioSettings

    seen = []
    monkeypatch.setattr(songbloom.text.g2p, "process_lyrics",
                        lambda text, language=None: seen.append((text, language)) or "[verse] HH AH0 L OW1 .")
    prompt = tmp_path / "style.wav"
    sf.write(str(prompt), np.random.default_rng(0).uniform(-0.5, 0.5, (48000, 2)).astype("float32"), 48000)
    settings = DemoAudioSettings(vae="tiny", items=[
        {"lyrics": "[verse] hello.", "language": "en", "seed": 7},
        {"lyrics": "[chorus] n i3 h ao3 . NOT_A_TOKEN", "processed": True, "prompt": str(prompt)},
    ])
    cb = DemoAudioCallback(settings, SongBloomConfig.from_name("tiny"), tmp_path)
    first, second = cb._demo_items(SimpleNamespace(datamodule=None))
    assert seen == [("[verse] hello.", "en")]
    vocab = cb.sb_cfg.model.lyric_vocab
    assert [vocab[i] for i in first.lyric_ids] == ["[verse]", "HH", "AH0", "L", "OW1", "."] and first.seed == 7
    assert [vocab[i] for i in second.lyric_ids] == ["[chorus]", "n", "i3", "h", "ao3", "."] and second.seed == 1
    assert first.prompt is None and second.prompt.mean.shape == (1, cb.sb_cfg.model.latent_dim, 25)
    with pytest.raises(ValueError, match=r"items\[0\]: needs 'lyrics'"):
        DemoAudioCallback(DemoAudioSettings(items=[{"text": "x"}]), cb.sb_cfg, tmp_path)._demo_items(None)
    with pytest.raises(ValueError, match="unknown keys"):
        DemoAudioSettings.from_config({"every_n_step": 5})


def test_progress_bar_choice(monkeypatch):
    from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar

    assert progress_bar({}, {"enable_progress_bar": False}) is None
    monkeypatch.setattr("sys.stdout.isatty", lambda: False)
    bar = progress_bar({"style": "auto", "log_file_every_n_steps": 25}, {})  # a log file: one line every 25 steps
    assert isinstance(bar, LogLineProgress) and bar.every_n_steps == 25
    assert isinstance(progress_bar({"style": "tqdm"}, {}), TQDMProgressBar)
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    assert isinstance(progress_bar({"style": "auto"}, {}), RichProgressBar)
    with pytest.raises(ValueError, match="progress_bar.style"):
        progress_bar({"style": "fancy"}, {})
