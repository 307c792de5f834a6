"""The proxy end to end: teacher, recovery in a subprocess that sees only the teacher's export, scores, verdict.

1. A scenario (world, the proxy MuQ, hidden tokenizer) and a tiny SongBloom teacher trained on its ids.
2. The teacher is exported in the release format with the proxy VAE; prompts and lyrics become an infer.py JSONL.
3. The hidden tokenizer's folder is deleted; ``python -m songbloom.sketch recover`` runs in a subprocess with the
   export, the MuQ folder and the JSONL only.
4. The recovered codebook is scored on held-out songs against the hidden ids, a permutation of them and a fresh
   k-means codebook; optionally the downstream LoRA routes; the negative control repeats 1-4 with ids
   independent of the audio and must fail.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import soundfile as sf
import torch

from songbloom.checkpoints.formats.release import export_release
from songbloom.proxy.codebook_view import codebook_view_scores
from songbloom.proxy.downstream import DownstreamSettings, RouteData, run_route, separation
from songbloom.proxy.muq import ATTENTION_GAIN
from songbloom.proxy.scenario import (
    Scenario,
    all_layer_features,
    attach_features,
    attach_lyric_ids,
    build_scenario,
    hidden_locality,
    hidden_stability,
)
from songbloom.proxy.scoring import codebook_ids, fresh_codebook, id_metrics, judge
from songbloom.proxy.teacher import FitSettings, song_samples, teacher_config, train_teacher
from songbloom.proxy.world import SAMPLE_RATE, Song
from songbloom.sketch import load_codebook
from songbloom.sketch.muq_backbone import muq_layer_count
from songbloom.sketch.recovery.corpus_files import iter_corpus
from songbloom.sketch.recovery.corpus_plan import CORPUS_PENALTY_MODE, CORPUS_SAMPLING
from songbloom.sketch.recovery.evaluate import EvalSong, teacher_forced_losses
from songbloom.sketch.recovery.recover import CORPUS_DIR
from songbloom.text.vocab import Vocabulary

logger = logging.getLogger(__name__)


# The proxy teacher's size of training, the same at every number of codes. Why: agreement is bounded by how
# faithfully the teacher renders its own ids. With 240 songs for 1000 steps it rendered 48-58 % faithfully on
# fresh seeds at 32-100 codes and exact agreement failed there (0.65-0.68 against 0.7 x ceiling); 480 songs for
# 2000 steps lifted those seeds to 0.69-0.77 and fresh seeds to 0.76-0.88 (benchmarks/README.md, the grid tables).
TEACHER_SONGS = 480
TEACHER_STEPS = 2000


@dataclass
class ProxySettings:
    seed: int = 0
    num_codes: int = 64
    finetune_frames_per_code: float = 4.0
    song_frames: int = 200
    # The teacher learns 480 songs for 2000 steps at every size (TEACHER_SONGS, TEACHER_STEPS say why)
    teacher_songs: int = TEACHER_SONGS
    heldout_songs: int = 24
    teacher_steps: int = TEACHER_STEPS
    teacher_lr: float = 3e-3
    corpus_requests: int = 60
    songs_per_request: int | None = None  # None: by size (songs_per_request_for)
    probe_epochs: int = 60
    corpus_penalty_mode: str = CORPUS_PENALTY_MODE  # the recovery's own default; "release" samples as infer.py
    corpus_sampling: str = CORPUS_SAMPLING  # the recovery's own default (unsharpened); "model": the teacher's settings
    calibrate_switching: bool = True  # recover decodes songs whole with a calibrated switch bonus
    # "The user's songs" the switch bonus is chosen on (recover --calibration-songs): new songs in the teacher's
    # timbres, none of them scored; 0: chosen on the recovery's held-out generations instead
    calibration_songs: int = 24
    finetune_heldout_songs: int = 16
    downstream: DownstreamSettings | None = field(default_factory=DownstreamSettings)
    control: bool = True
    control_teacher_steps: int | None = None  # None: as the teacher

    def __post_init__(self) -> None:
        # More codes need a larger corpus to sample each code often enough (measured at 160 codes with the
        # 64-code settings: corpus agreement 0.38, held-out 0.50, ceiling 0.92).
        if self.songs_per_request is None:
            self.songs_per_request = songs_per_request_for(self.num_codes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def songs_per_request_for(num_codes: int) -> int:
    """3 songs per request (180 songs, ~36k frames) up to 64 codes, then in proportion, at most 8."""
    return min(8, max(3, -(-3 * num_codes // 64)))


@dataclass
class ScenarioRun:
    """What one scenario produced: the teacher, the recovered codebook and the held-out id sets."""

    scenario: Scenario
    teacher: Any
    codebook_path: Path
    corpus_dir: Path
    seconds: dict[str, float]


def run_scenario(settings: ProxySettings, work: Path, *, independent_ids: bool) -> ScenarioRun:
    t0 = time.perf_counter()
    cfg = teacher_config(settings.num_codes)
    vocab = Vocabulary(list(cfg.model.lyric_vocab))
    sc = build_scenario(work, seed=settings.seed, num_codes=settings.num_codes, teacher_songs=settings.teacher_songs,
                        heldout_songs=settings.heldout_songs, song_frames=settings.song_frames,
                        independent_ids=independent_ids, vocab=vocab,
                        lyric_max_len=cfg.model.lyric_max_len)
    t1 = time.perf_counter()
    steps = (settings.control_teacher_steps or settings.teacher_steps) if independent_ids else settings.teacher_steps
    samples = song_samples([s.latents for s in sc.teacher_songs], [s.ids for s in sc.teacher_songs],
                           [s.extra["lyric_ids"] for s in sc.teacher_songs],
                           [s.prompt_latents for s in sc.teacher_songs])
    teacher = train_teacher(settings.num_codes, samples, FitSettings(steps=steps, lr=settings.teacher_lr,
                                                                     seed=settings.seed))
    t2 = time.perf_counter()
    export_dir = work / "teacher_release"
    export_release(teacher, cfg, sc.world.vae, export_dir, name="proxy_teacher")
    requests = write_requests(sc, work / "requests", settings)
    calibration = write_calibration_songs(sc, work / "calibration_songs", settings)
    sc.hidden.forget(sc.hidden_dir)  # recovery starts with the hidden tokenizer gone
    codebook = work / "recovered_codebook.safetensors"
    run_recovery(export_dir, sc.muq_dir, requests, work / "recovery", codebook, settings, muq_layer_count(sc.muq),
                 calibration)
    t3 = time.perf_counter()
    return ScenarioRun(sc, teacher, codebook, work / "recovery" / CORPUS_DIR,
                       {"world": t1 - t0, "teacher": t2 - t1, "recovery": t3 - t2})


def write_requests(sc: Scenario, folder: Path, settings: ProxySettings) -> Path:
    """An infer.py JSONL of new lyrics and prompts in the teacher's timbres (prompt audio as 48 kHz wav files)."""
    songs = sc.world.songs("request_", settings.corpus_requests, sc.world.teacher_styles, settings.seed * 10 + 3)
    return _songs_jsonl(folder, "requests.jsonl", songs, "prompt_wav", lambda song: song.prompt_audio)


def write_calibration_songs(sc: Scenario, folder: Path, settings: ProxySettings) -> Path | None:
    """The user's songs of ``recover --calibration-songs``: a JSONL of new songs in the teacher's timbres (full
    songs as 48 kHz wav files, lyrics beside them); None when the settings calibrate on generations or not at all."""
    if not settings.calibrate_switching or settings.calibration_songs <= 0:
        return None
    songs = sc.world.songs("calibration_", settings.calibration_songs, sc.world.teacher_styles, settings.seed * 10 + 6)
    return _songs_jsonl(folder, "songs.jsonl", songs, "audio", lambda song: song.audio)


def _songs_jsonl(folder: Path, name: str, songs: list[Song], audio_key: str,
                 audio: Callable[[Song], torch.Tensor]) -> Path:
    """Each song's ``audio`` as a 48 kHz wav in ``folder``, and ``folder/name``: one ``{idx, lyrics, audio_key}``
    line per song (the wav's name, relative to the JSONL)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for song in songs:
        wav = folder / f"{song.name}.wav"
        sf.write(str(wav), audio(song).numpy(), SAMPLE_RATE, subtype="FLOAT")
        lines.append(json.dumps({"idx": song.name, "lyrics": song.lyrics, audio_key: wav.name}, ensure_ascii=False))
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def recover_argv(export_dir: Path, muq_dir: Path, requests: Path, work: Path, out: Path,
                 settings: ProxySettings, num_layers: int, calibration: Path | None = None) -> list[str]:
    # Every MuQ hidden state is offered to the fit: which layer the hidden tokenizer used is for it to find.
    layers = [str(i) for i in range(num_layers)]
    return [sys.executable, "-m", "songbloom.sketch", "recover", "--base", str(export_dir), "--muq", str(muq_dir),
            "--layers", *layers,
            "--requests", str(requests), "--work-dir", str(work), "--out", str(out),
            "--songs-per-request", str(settings.songs_per_request), "--corpus-seed", str(settings.seed),
            "--probe-epochs", str(settings.probe_epochs), "--device", "cpu", "--no-progress",
            "--corpus-batch-size", "16", "--no-corpus-audio", "--penalty-mode", settings.corpus_penalty_mode,
            "--corpus-sampling", settings.corpus_sampling,
            # the teacher learned songs of song_frames; a little more lets EOS come where it learned it
            "--max-duration", f"{settings.song_frames / 25 + 2:g}",
            "--probe-calibrate-switching" if settings.calibrate_switching else "--no-probe-calibrate-switching",
            *(["--calibration-songs", str(calibration)] if calibration is not None else [])]


def run_recovery(export_dir: Path, muq_dir: Path, requests: Path, work: Path, out: Path,
                 settings: ProxySettings, num_layers: int, calibration: Path | None = None) -> None:
    """The recovery as a user runs it, in its own process: it can only read what its arguments name."""
    argv = recover_argv(export_dir, muq_dir, requests, work, out, settings, num_layers, calibration)
    logger.info("recovery: %s", " ".join(argv))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    log = work.parent / "recovery.log"
    log.write_text(proc.stdout + proc.stderr, encoding="utf-8")
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise RuntimeError(f"the recovery subprocess failed (exit {proc.returncode}); log {log}:\n{tail}")


def roundtrip_ceiling(sc: Scenario) -> float:
    """Share of hidden ids that survive audio -> VAE encode -> decode -> MuQ: the most any tokenizer can match.
    With independent ids (the control) the ids do not come from the audio, so nothing is lost: 1."""
    if sc.independent_ids:
        return 1.0
    vae = sc.world.vae
    with torch.no_grad():
        decoded = [vae.decode(vae.encode(s.audio[None, None], sample=False))[0].mean(0) for s in sc.heldout_songs]
    layer = sc.hidden.layer
    feats = all_layer_features(sc.muq, decoded)
    hits = sum(int((sc.hidden.ids(f[layer]) == s.ids).sum()) for f, s in zip(feats, sc.heldout_songs, strict=True))
    return hits / sum(s.ids.numel() for s in sc.heldout_songs)


def corpus_at_hidden_layer(sc: Scenario, corpus_dir: Path) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The recovery corpus's MuQ features at the hidden tokenizer's layer and the ids the teacher sampled."""
    features, labels = [], []
    for song in iter_corpus(corpus_dir, layers=[sc.hidden.layer], verify=False):
        features.append(song.features[0].float())
        labels.append(song.sketch_ids.long())
    return features, labels


def teacher_fidelity(sc: Scenario, features: list[torch.Tensor], labels: list[torch.Tensor]) -> float:
    """Share of the ids the teacher sampled in the recovery corpus that the hidden tokenizer gives back on the
    audio the teacher generated for them: how faithfully the teacher renders its own ids, which bounds what any
    tokenizer learnt from its generations can reach. Diagnostic only (the hidden tokenizer is not recovery's)."""
    hits = sum(int((sc.hidden.ids(f) == y).sum()) for f, y in zip(features, labels, strict=True))
    return hits / max(1, sum(y.numel() for y in labels))


def eval_songs(songs: list[Song]) -> list[EvalSong]:
    return [EvalSong(s.latents, s.extra["lyric_ids"], s.prompt_latents) for s in songs]


def score_scenario(run: ScenarioRun, settings: ProxySettings) -> dict[str, Any]:
    sc = run.scenario
    k = settings.num_codes
    codebook = load_codebook(run.codebook_path)
    held = sc.heldout_songs
    hidden = [s.ids for s in held]
    recovered, top5 = codebook_ids(codebook, held)
    fresh = codebook_ids(fresh_codebook(sc.teacher_songs, sc.muq, str(sc.muq_dir), k, settings.seed), held)[0]
    perm_map = torch.randperm(k, generator=torch.Generator().manual_seed(settings.seed + 12345))
    perm = [perm_map[h] for h in hidden]
    losses = teacher_forced_losses(run.teacher, eval_songs(held),
                                   {"hidden": hidden, "recovered": recovered, "perm": perm, "fresh": fresh},
                                   seed=settings.seed + 777)
    result: dict[str, Any] = id_metrics(hidden, recovered, top5, fresh, k)
    result["roundtrip_ceiling"] = roundtrip_ceiling(sc)
    result["hidden_stability"] = hidden_stability(sc.muq, sc.hidden, [s.audio for s in held],
                                                  [s.extra["features"] for s in held], settings.seed + 31)
    result["hidden_locality"] = hidden_locality(sc.muq, sc.hidden, [s.audio for s in held],
                                                [s.extra["features"] for s in held])
    corpus_features, corpus_labels = corpus_at_hidden_layer(sc, run.corpus_dir)
    result["teacher_fidelity"] = teacher_fidelity(sc, corpus_features, corpus_labels)
    result["codebook_view"] = codebook_view_scores(sc.hidden, corpus_features, corpus_labels,
                                                   [s.extra["features"][sc.hidden.layer] for s in held], hidden)
    result["ar_loss"] = {name: v.ar for name, v in losses.items()}
    result["flow_loss"] = {name: v.flow for name, v in losses.items()}
    result["recovery_metadata"] = {key: codebook.metadata.get("recovery", {}).get(key)
                                   for key in ("method", "corpus", "metrics")}
    result["muq_layer"] = {"hidden": sc.hidden.layer, "recovered": int(codebook.metadata["muq_layer"])}
    return result


def finetune_split(sc: Scenario, settings: ProxySettings) -> tuple[list[Song], list[Song]]:
    """Songs of the unseen timbres: at most ``frames_per_code x K`` frames to train on, and held-out songs."""
    budget = int(settings.finetune_frames_per_code * settings.num_codes)
    block = teacher_config(settings.num_codes).model.block_size
    pieces = []
    songs = sc.world.songs("finetune_", math.ceil(budget / sc.world.settings.song_frames) + 1, sc.world.new_styles,
                           settings.seed * 10 + 4)
    for song in songs:
        take = min(song.latents.shape[-1], budget) // block * block
        if take <= 0:
            break
        pieces.append(_cut(song, take))
        budget -= take
    held = sc.world.songs("finetune_heldout_", settings.finetune_heldout_songs, sc.world.new_styles,
                          settings.seed * 10 + 5)
    cfg = teacher_config(settings.num_codes)
    vocab = Vocabulary(list(cfg.model.lyric_vocab))
    attach_features(sc.muq, pieces + held)
    attach_lyric_ids(pieces + held, vocab, cfg.model.lyric_max_len)
    return pieces, held


def _cut(song: Song, frames: int) -> Song:
    hop = song.audio.shape[0] // song.latents.shape[-1]
    return Song(song.name, song.style, song.notes[:frames], song.latents[:, :frames], song.audio[: frames * hop],
                song.prompt_latents, song.prompt_audio, song.lyrics)


def run_downstream(run: ScenarioRun, settings: ProxySettings) -> dict[str, Any]:
    assert settings.downstream is not None
    sc = run.scenario
    train, held = finetune_split(sc, settings)
    codebook = load_codebook(run.codebook_path)
    fresh = fresh_codebook(train, sc.muq, str(sc.muq_dir), settings.num_codes, settings.seed)
    routes = {
        "recovered_route": RouteData(codebook_ids(codebook, train)[0], codebook_ids(codebook, held)[0],
                                     codebook_path=run.codebook_path),
        "fresh_route": RouteData(codebook_ids(fresh, train)[0], codebook_ids(fresh, held)[0], codebook_path=None),
    }
    conditions = [(s.extra["lyric_ids"], s.prompt_latents) for s in train]
    results = {name: run_route(run.teacher, data, [s.latents for s in train], conditions, eval_songs(held),
                               settings.downstream) for name, data in routes.items()}
    out: dict[str, Any] = {name: r.summary() for name, r in results.items()}
    out["separation_se"] = separation(results["recovered_route"], results["fresh_route"])
    out["finetune_frames"] = sum(s.latents.shape[-1] for s in train)
    out["frames_per_code"] = out["finetune_frames"] / settings.num_codes
    return out


def run_benchmark(settings: ProxySettings, work: Path) -> dict[str, Any]:
    """Everything the benchmark reports (the ``RESULT`` line's object)."""
    t0 = time.perf_counter()
    main = run_scenario(settings, work / "scenario", independent_ids=False)
    result = score_scenario(main, settings)
    shown = ("id_agreement", "most_frequent_code_rate", "roundtrip_ceiling", "teacher_fidelity", "hidden_stability",
             "hidden_locality", "ar_loss", "flow_loss", "entropy", "change_rate", "codebook_view")
    logger.info("scores: %s", json.dumps({k: result[k] for k in shown}, default=float))
    if settings.downstream is not None:
        t = time.perf_counter()
        result["downstream"] = run_downstream(main, settings)
        main.seconds["downstream"] = time.perf_counter() - t
    verdict = judge(result, with_downstream=settings.downstream is not None)
    controls: dict[str, Any] = {}
    if settings.control:
        ctrl = run_scenario(settings, work / "control", independent_ids=True)
        c = score_scenario(ctrl, settings)
        cv = judge(c, with_downstream=False)
        controls["independent_ids"] = {
            "id_agreement": c["id_agreement"], "most_frequent_code_rate": c["most_frequent_code_rate"],
            "ar_loss": c["ar_loss"], "flow_loss": c["flow_loss"], "gap_closed": cv["gap_closed"],
            "checks": cv["checks"], "valid": cv["valid"], "passed": cv["passed"],
            "failed_as_required": not cv["passed"], "seconds": ctrl.seconds,
        }
    result.update(verdict)
    result["controls"] = controls
    control_ok = (not settings.control) or controls["independent_ids"]["failed_as_required"]
    result["passed"] = bool(verdict["passed"] and control_ok)
    result["settings"] = {**settings.as_dict(), "world_notes": main.scenario.world.settings.num_notes,
                          "muq_attention_gain": ATTENTION_GAIN}
    result["seconds"] = {**main.seconds, "total": time.perf_counter() - t0}
    (work / "result.json").write_text(json.dumps(result, indent=1, sort_keys=True, default=float), encoding="utf-8")
    logger.info("proxy %s: id agreement %.3f (most frequent code %.3f, ceiling %.3f), gap closed AR %.2f flow %.2f, "
                "control %s; %.0f s", "PASSED" if result["passed"] else "NOT PASSED", result["id_agreement"],
                result["most_frequent_code_rate"], result["roundtrip_ceiling"], verdict["gap_closed"]["ar"],
                verdict["gap_closed"]["flow"], "failed as required" if control_ok else "PASSED (bad)",
                result["seconds"]["total"])
    return result
