"""Listen to a run while it trains: fixed demo songs every N steps, beside the base model's song (A/B).

A fixed demo set (lyrics, optional style prompt, seed; see ``demo_items``) is generated on rank 0 with our sampler
(``songbloom.inference.pipeline``) and the run's VAE, every ``every_n_steps`` optimizer steps. Each song is
written to ``<run_dir>/demos/step_<step>/{model,base}_<i>.wav`` with a mel-spectrogram ``.png`` (so runs
without W&B can be heard too; see ``audio_files``) and, when a W&B logger is attached, logged as audio + image +
lyrics.

The base model's song for the same seed is the reference: with LoRA it is generated with the adapters
switched off and the fully-trained tensors put back to their values before training; with full fine-tuning
it is the step-0 song (the base never changes, so it is made once and reused, also after a resume).

A demo never stops training: every error is logged as a warning, every round has a wall-clock budget (a song
still running when it is spent is abandoned, the rest are skipped, and the reason is logged), and the RNG
streams and train/eval mode of the model are restored afterwards.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from songbloom.building.lora import base_weights, lora_layers, snapshot_full_tensors
from songbloom.checkpoints.vae import demo_vae
from songbloom.config import SongBloomConfig
from songbloom.training.audio_files import copy_song, write_song
from songbloom.training.demo_items import build_demo_items
from songbloom.training.demo_settings import DemoAudioSettings, DemoItem
from songbloom.utils.atomic import atomic_write_json

logger = logging.getLogger(__name__)

_clock = time.monotonic  # the time box's clock (tests replace it)


class DemoTimeUp(Exception):
    """Raised from the sampler's progress hook when a round must stop (budget spent, or a preemption signal)."""


def preemption_pending(trainer: L.Trainer) -> bool:
    """A preemption signal has arrived: the checkpoint that follows must not wait for demo songs."""
    # The flag set of songbloom.training.preemption.PreemptionCheckpoint (duck-typed: no import cycle).
    return any(bool(getattr(cb, "signal_pending", False)) for cb in trainer.callbacks)


class DemoAudioCallback(L.Callback):
    """Generate the demo set every ``every_n_steps`` steps on rank 0; see the module docstring."""

    def __init__(self, settings: DemoAudioSettings, sb_cfg: SongBloomConfig, run_dir: str | Path, *,
                 demo_experiment: bool = False):
        self.settings = settings
        self.sb_cfg = sb_cfg
        self.run_dir = Path(run_dir)
        self.demo_experiment = demo_experiment
        self.items: list[DemoItem] | None = None
        self.history: list[dict[str, Any]] = []  # one record per round (tests, callers in-process)
        self._vae = None
        self._full_tensors: dict[str, torch.Tensor] | None = None
        self._is_lora = False
        self._last_step = -1
        self._disabled_reason: str | None = None

    # ------------------------------------------------------------------ Lightning hooks
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # Runs before a checkpoint is restored: the tensors seen here are the base model's.
        model = getattr(pl_module, "model", pl_module)
        self._is_lora = bool(lora_layers(model))
        if self._is_lora and self.settings.base and trainer.is_global_zero:
            self._full_tensors = snapshot_full_tensors(model)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Not on_fit_start: a resumed run's step counter (and, for some strategies, its weights) are restored
        # only after that hook, so step 0 there does not mean "untrained".
        if not trainer.is_global_zero:
            return
        if "fsdp" in type(trainer.strategy).__name__.lower():
            self._disabled_reason = "FSDP shards the weights across ranks; rank 0 alone cannot generate"
            logger.warning("demo audio is off: %s", self._disabled_reason)
            return
        try:
            self._demo_items(trainer)
        except Exception as e:
            self._disabled_reason = f"the demo set could not be built ({type(e).__name__}: {e})"
            logger.warning("demo audio is off: %s", self._disabled_reason, exc_info=True)
            return
        needs_base_now = self.settings.base and not self._is_lora and self._load_base_cache() is None
        if trainer.global_step == 0 and (self.settings.at_start or needs_base_now):
            self.run_round(trainer, pl_module)
        elif needs_base_now:
            logger.warning(
                "demo audio: no base songs cached in %s and the weights are already trained (resumed at step %d); "
                "rounds show the model only", self.run_dir / "demos" / "base", trainer.global_step
            )

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = trainer.global_step
        if step > 0 and step % self.settings.every_n_steps == 0 and step != self._last_step:
            self.run_round(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.settings.at_end and trainer.global_step != self._last_step:
            self.run_round(trainer, pl_module)

    # ------------------------------------------------------------------ one round
    def run_round(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any] | None:
        """Generate (rank 0) and log the demo set now; never raises."""
        step = trainer.global_step
        self._last_step = step
        if not trainer.is_global_zero or self._disabled_reason:
            return None
        model = getattr(pl_module, "model", pl_module)
        was_training = model.training
        start = _clock()
        record: dict[str, Any] = {"step": step, "songs": 0, "skipped": 0, "reason": None}
        try:
            device = pl_module.device
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                model.eval()
                record = self._generate_round(trainer, pl_module, model, step, start)
        except Exception as e:  # a demo must never stop training
            logger.warning("demo audio at step %d failed (training goes on): %s: %s", step, type(e).__name__, e,
                           exc_info=True)
            record["error"] = f"{type(e).__name__}: {e}"
        finally:
            model.train(was_training)
        record["seconds"] = _clock() - start
        self.history.append(record)
        try:
            scalars = {"demo/seconds": record["seconds"], "demo/songs": float(record["songs"]),
                       "demo/skipped": float(record["skipped"]), "demo/failed": float("error" in record)}
            for lg in trainer.loggers:
                lg.log_metrics(scalars, step=step)
        except Exception as e:
            logger.warning("demo audio: logging the round's scalars failed: %s", e)
        return record

    def _generate_round(self, trainer: L.Trainer, pl_module: L.LightningModule, model: torch.nn.Module,
                        step: int, start: float) -> dict[str, Any]:
        s = self.settings
        items = self._demo_items(trainer)
        step_dir = self.run_dir / "demos" / f"step_{step:06d}"
        pipe = self._pipeline(model, pl_module.device)
        base_cache = self._load_base_cache() if s.base else None
        record: dict[str, Any] = {"step": step, "songs": 0, "skipped": 0, "reason": None, "items": []}
        plan = [(item, which) for item in items for which in self._round_parts(base_cache)]
        frames = self._generate_songs(trainer, pl_module, pipe, model, plan, step_dir, base_cache, record, start)
        if s.base:
            self._settle_base_songs(step_dir, items, base_cache)
        if record["reason"]:
            logger.warning("demo audio at step %d shortened: %s", step, record["reason"])
        record["items"] = [
            {"index": it.index, "seed": it.seed, "lyrics": it.lyrics,
             "model": self._song_done(step_dir, "model", it), "base": self._song_done(step_dir, "base", it),
             "model_frames": frames.get(f"model_{it.index}")}
            for it in items
        ]
        atomic_write_json(step_dir / "index.json", record)
        self._log_media(trainer, step, step_dir, items)
        logger.info("demo audio at step %d: %d songs in %.1f s -> %s", step, record["songs"],
                    _clock() - start, step_dir)
        return record

    def _round_parts(self, base_cache: Path | None) -> tuple[str, ...]:
        """The songs of one item this round: the model's, and the base's while LoRA has none cached."""
        if self.settings.base and base_cache is None and self._is_lora:
            return ("model", "base")
        return ("model",)

    def _generate_songs(self, trainer, pl_module, pipe, model, plan: list[tuple[DemoItem, str]], step_dir: Path,
                        base_cache: Path | None, record: dict[str, Any], start: float) -> dict[str, int]:
        """Generate and write the planned songs until the time box or a preemption signal stops the round.

        Counts songs, and the skipped ones with the reason, in ``record``; returns the frames of each song.
        """
        s, step = self.settings, record["step"]
        budget = float(s.time_budget_s)
        last_song_s = 0.0
        frames: dict[str, int] = {}
        for n, (item, which) in enumerate(plan):
            elapsed = _clock() - start
            stop = self._stop_before_song(trainer, elapsed, last_song_s, budget, n, len(plan))
            if stop is not None:
                record["skipped"], record["reason"] = len(plan) - n, stop
                break
            t0 = _clock()
            try:
                result = self._generate(trainer, pl_module, pipe, model, item, which, start, budget)
            except DemoTimeUp as stop:
                record["skipped"] = len(plan) - n
                record["reason"] = (f"{stop} during song {n + 1}/{len(plan)} ({which} {item.index}); "
                                    "it and the rest were skipped")
                break
            last_song_s = _clock() - t0
            frames[f"{which}_{item.index}"] = result.song.num_frames
            wav = step_dir / f"{which}_{item.index}.wav"
            write_song(result.audio, pipe.sample_rate, wav, title=f"{which} step {step}: {item.lyrics}",
                       spectrogram=s.spectrogram)
            record["songs"] += 1
            if which == "model" and s.base and not self._is_lora and step == 0 and base_cache is None:
                copy_song(wav, step_dir / f"base_{item.index}.wav")  # at step 0 the model IS the base
        return frames

    @staticmethod
    def _stop_before_song(trainer: L.Trainer, elapsed: float, last_song_s: float, budget: float, n: int,
                          total: int) -> str | None:
        """Why the round must stop before song ``n`` of ``total``, or None to go on."""
        if preemption_pending(trainer):
            return f"preemption signal: {total - n} songs skipped so the checkpoint comes first"
        if elapsed + last_song_s > budget:
            return (f"time budget {budget:g} s: {elapsed:.1f} s used after {n}/{total} songs "
                    f"(last song took {last_song_s:.1f} s)")
        return None

    def _settle_base_songs(self, step_dir: Path, items: list[DemoItem], base_cache: Path | None) -> None:
        """Cache this round's base songs, or put the cached ones beside this round's model songs."""
        done = [self._song_done(step_dir, "base", it) for it in items]
        # LoRA: a base song cut by the time box is made again next round, so cache only a complete set.
        # Full fine-tuning: the step-0 songs are all the base there will ever be; keep what there is.
        if base_cache is None and (all(done) or (any(done) and not self._is_lora)):
            self._store_base_cache(step_dir, items)
        elif base_cache is not None:
            for it in items:
                cached = base_cache / f"base_{it.index}.wav"
                if cached.is_file():
                    copy_song(cached, step_dir / f"base_{it.index}.wav")

    def _generate(self, trainer, pl_module, pipe, model, item: DemoItem, which: str, start: float,
                  budget: float):
        from songbloom.inference.pipeline import SongRequest

        def check_time(_patches: int, _rows: list[int]) -> None:
            if _clock() - start > budget:
                raise DemoTimeUp(f"time budget {budget:g} s ran out")
            if preemption_pending(trainer):
                raise DemoTimeUp("a preemption signal arrived")

        if which == "base":
            weights = base_weights(model, self._full_tensors or {}) if self._is_lora else contextlib.nullcontext()
        else:
            ema = getattr(pl_module, "ema", None)
            use_ema = self.settings.use_ema and ema is not None and getattr(ema, "num_updates", 0) > 0
            weights = ema.swapped_in(model) if use_ema else contextlib.nullcontext()
        request = SongRequest(f"{which}_{item.index}", list(item.lyric_ids), item.prompt, seed=item.seed)
        with weights, trainer.precision_plugin.forward_context():
            return pipe.generate([request], progress=check_time)[0]

    # ------------------------------------------------------------------ pieces
    def _pipeline(self, model: torch.nn.Module, device: torch.device):
        from songbloom.checkpoints.bundle import SongBloom
        from songbloom.inference.generate import SamplingParams
        from songbloom.inference.pipeline import SongBloomPipeline
        from songbloom.text.vocab import Vocabulary

        s = self.settings
        vae = self._demo_vae().to(device)
        params = SamplingParams.from_inference_config(
            self.sb_cfg.inference, max_frames=s.seconds * self.sb_cfg.frame_rate,
            **{k: v for k, v in s.sampling.items() if v is not None},
        )
        bundle = SongBloom(config=self.sb_cfg, model=model, vae=vae,
                           vocab=Vocabulary(list(self.sb_cfg.model.lyric_vocab)))
        return SongBloomPipeline(bundle, params, prompt_latent=s.prompt_latent, cuda_graphs=False)

    def _demo_vae(self):
        """The VAE the run's latents come from: the release VAE the config names, else the demo's tiny one."""
        if self._vae is not None:
            return self._vae
        from songbloom.checkpoints.vae import load_vae

        s, cfg = self.settings, self.sb_cfg
        choice = s.vae
        if choice == "auto":
            named = cfg.vae_config_path and cfg.vae_ckpt_path and Path(cfg.vae_ckpt_path).is_file()
            choice = "release" if named else "tiny"
            if choice == "tiny" and not self.demo_experiment:
                logger.warning("demo audio: the config names no VAE checkpoint, so songs are decoded by the demo's "
                               "random tiny VAE; set callbacks.demo_audio.vae=<vae json> and vae_ckpt=<file>")
        if choice == "tiny":
            vae = demo_vae()
        elif choice == "release":
            if not (cfg.vae_config_path and cfg.vae_ckpt_path):
                raise ValueError("callbacks.demo_audio.vae=release but the model config names no VAE json/ckpt")
            vae = load_vae(cfg.vae_config_path, cfg.vae_ckpt_path)
        else:
            if not s.vae_ckpt:
                raise ValueError(f"callbacks.demo_audio.vae={choice}: also set callbacks.demo_audio.vae_ckpt")
            vae = load_vae(choice, s.vae_ckpt)
        self._vae = vae.eval()
        return self._vae

    def _demo_items(self, trainer: L.Trainer) -> list[DemoItem]:
        """The fixed demo set, built once (see :func:`songbloom.training.demo_items.build_demo_items`)."""
        if self.items is None:
            self.items = build_demo_items(self.settings, self.sb_cfg, trainer, self._demo_vae)
        return self.items

    # ------------------------------------------------------------------ base songs, cached in the run dir
    def _base_fingerprint(self) -> dict[str, Any]:
        s = self.settings
        return {"items": [it.fingerprint() for it in self.items or []], "seconds": s.seconds,
                "sampling": s.sampling, "prompt_latent": s.prompt_latent, "vae": s.vae}

    def _load_base_cache(self) -> Path | None:
        """The folder of cached base songs when it was made for this very demo set, else None."""
        base = self.run_dir / "demos" / "base"
        stamp = base / "fingerprint.json"
        if self.items is None or not stamp.is_file():
            return None
        return base if json.loads(stamp.read_text()) == self._base_fingerprint() else None

    def _store_base_cache(self, step_dir: Path, items: list[DemoItem]) -> Path:
        base = self.run_dir / "demos" / "base"
        base.mkdir(parents=True, exist_ok=True)
        for it in items:
            if self._song_done(step_dir, "base", it):
                copy_song(step_dir / f"base_{it.index}.wav", base / f"base_{it.index}.wav")
        atomic_write_json(base / "fingerprint.json", self._base_fingerprint())
        return base

    @staticmethod
    def _song_done(step_dir: Path, which: str, item: DemoItem) -> bool:
        return (step_dir / f"{which}_{item.index}.wav").is_file()

    # ------------------------------------------------------------------ W&B
    def _log_media(self, trainer: L.Trainer, step: int, step_dir: Path, items: list[DemoItem]) -> None:
        from lightning.pytorch.loggers import WandbLogger

        wandb_loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        if not wandb_loggers:
            return
        import wandb

        media: dict[str, Any] = {}
        table = wandb.Table(columns=["item", "seed", "lyrics", "model", "model_mel", "base", "base_mel"])
        for it in items:
            row: list[Any] = [it.index, it.seed, it.lyrics]
            for which in ("model", "base"):
                wav = step_dir / f"{which}_{it.index}.wav"
                png = wav.with_suffix(".png")
                audio = wandb.Audio(str(wav), caption=it.lyrics[:500]) if wav.is_file() else None
                image = wandb.Image(str(png), caption=f"{which} {it.index}") if png.is_file() else None
                if audio is not None:
                    media[f"demo/{which}_{it.index}"] = audio
                if image is not None:
                    media[f"demo/{which}_{it.index}_mel"] = image
                row += [audio, image]
            table.add_data(*row)
        media["demo/table"] = table
        media["trainer/global_step"] = step  # Lightning's WandbLogger step axis
        for lg in wandb_loggers:
            lg.experiment.log(media)
