"""Listen to a run while it trains: fixed demo songs every N steps, beside the base model's song (A/B).

A fixed demo set (lyrics, optional style prompt, seed) is generated on rank 0 with our sampler
(``songbloom.inference.pipeline``) and the run's VAE, every ``every_n_steps`` optimizer steps. Each song is
written to ``<run_dir>/demos/step_<step>/{model,base}_<i>.wav`` with a mel-spectrogram ``.png`` (so runs
without W&B can be heard too) and, when a W&B logger is attached, logged as audio + image + lyrics.

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
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import lightning as L
import torch

from songbloom.building.lora import base_weights, lora_layers, snapshot_full_tensors
from songbloom.checkpoints.vae import demo_vae
from songbloom.config import SongBloomConfig
from songbloom.utils.atomic import atomic_write_json

logger = logging.getLogger(__name__)

_clock = time.monotonic  # the time box's clock (tests replace it)

BUILTIN_LYRICS: tuple[str, ...] = (
    # Already in the release's processed form (vocabulary symbols): no G2P is needed to build the demo set.
    "[intro] [verse] n i3 h ao3 , w o3 ai4 n i3 . [chorus] HH AH0 L OW1 , W ER1 L D . [outro]",
    "[intro] [verse] S AH1 N SH AY2 N , AO1 N DH AH0 R OW1 D . [chorus] l a4 l a4 , l a4 l a4 . [outro]",
)
"""The fallback demo lyrics when neither ``items`` nor validation data give any."""


class DemoTimeUp(Exception):
    """Raised from the sampler's progress hook when a round must stop (budget spent, or a preemption signal)."""


def preemption_pending(trainer: L.Trainer) -> bool:
    """A preemption signal has arrived: the checkpoint that follows must not wait for demo songs."""
    # The flag set of songbloom.training.preemption.PreemptionCheckpoint (duck-typed: no import cycle).
    return any(bool(getattr(cb, "signal_pending", False)) for cb in trainer.callbacks)


@dataclass
class DemoAudioSettings:
    """``conf/callbacks/default.yaml: demo_audio``."""

    enabled: bool = True
    every_n_steps: int = 500
    at_start: bool = True  # a round before the first step: model == base there (a check that A/B is wired)
    at_end: bool = True
    num_items: int = 2  # songs taken from the validation data when ``items`` is empty
    items: list[dict[str, Any]] = field(default_factory=list)  # {lyrics, language, processed, prompt, seed}
    seconds: float = 10.0
    seed: int = 0
    time_budget_s: float = 300.0
    base: bool = True
    use_ema: bool = True
    vae: str = "auto"  # auto | tiny | release | <VAE json path>
    vae_ckpt: str | None = None
    prompt_latent: str = "mean"  # the VAE posterior mean (deterministic) or "sample" (seeded per song)
    sampling: dict[str, Any] = field(default_factory=dict)  # SamplingParams overrides, e.g. {steps: 16}
    spectrogram: bool = True

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> DemoAudioSettings:
        cfg = dict(cfg or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f"callbacks.demo_audio: unknown keys {unknown}; known keys: {sorted(known)}")
        out = cls(**cfg)
        if out.every_n_steps <= 0:
            raise ValueError(f"callbacks.demo_audio.every_n_steps must be positive, got {out.every_n_steps}")
        return out


@dataclass
class DemoItem:
    """One demo song: lyric ids, the readable lyrics that go beside the audio, an optional prompt, a seed."""

    index: int
    lyric_ids: list[int]
    lyrics: str
    seed: int
    prompt: Any = None  # songbloom.inference.prompt.PromptMoments | None

    def fingerprint(self) -> dict[str, Any]:
        p = self.prompt
        prompt_sum = None if p is None else [list(p.mean.shape), float(p.mean.double().sum())]
        return {"lyric_ids": list(self.lyric_ids), "seed": self.seed, "prompt": prompt_sum}


# ---------------------------------------------------------------------------------------------- files
def mel_image(audio: torch.Tensor, sample_rate: int, path: Path, title: str = "") -> Path:
    """Save a log-mel spectrogram of ``audio`` (C, T) as a PNG (matplotlib without pyplot's global state)."""
    import torchaudio.transforms as T
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    mono = audio.float().mean(dim=0)
    hop = max(1, sample_rate // 100)
    mel = T.MelSpectrogram(sample_rate=sample_rate, n_fft=4 * hop, hop_length=hop, n_mels=80)(mono)
    db = T.AmplitudeToDB(top_db=80.0)(mel + 1e-10)
    fig = Figure(figsize=(8, 3), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    seconds = mono.shape[-1] / sample_rate
    ax.imshow(db.numpy(), origin="lower", aspect="auto", extent=(0.0, seconds, 0, db.shape[0]), cmap="magma")
    ax.set_xlabel("seconds")
    ax.set_ylabel("mel bin")
    if title:
        ax.set_title(title[:90], fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(path))
    return path


def write_song(audio: torch.Tensor, sample_rate: int, wav_path: Path, *, title: str, spectrogram: bool) -> None:
    import soundfile as sf

    wav_path.parent.mkdir(parents=True, exist_ok=True)
    # 32-bit float: a young model's song may exceed [-1, 1], and 16-bit PCM would clip (and hide) that.
    sf.write(str(wav_path), audio.float().T.numpy(), sample_rate, subtype="FLOAT")
    if spectrogram:
        mel_image(audio, sample_rate, wav_path.with_suffix(".png"), title)


# ---------------------------------------------------------------------------------------------- the callback
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
        budget = float(s.time_budget_s)
        record: dict[str, Any] = {"step": step, "songs": 0, "skipped": 0, "reason": None, "items": []}
        plan: list[tuple[DemoItem, str]] = []
        for item in items:
            plan.append((item, "model"))
            if s.base and base_cache is None and self._is_lora:
                plan.append((item, "base"))
        last_song_s = 0.0
        frames: dict[str, int] = {}
        for n, (item, which) in enumerate(plan):
            elapsed = _clock() - start
            if preemption_pending(trainer):
                record["skipped"] = len(plan) - n
                record["reason"] = f"preemption signal: {len(plan) - n} songs skipped so the checkpoint comes first"
                break
            if elapsed + last_song_s > budget:
                record["skipped"] = len(plan) - n
                record["reason"] = (f"time budget {budget:g} s: {elapsed:.1f} s used after {n}/{len(plan)} songs "
                                    f"(last song took {last_song_s:.1f} s)")
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
                self._copy_song(wav, step_dir / f"base_{item.index}.wav")  # at step 0 the model IS the base
        if s.base:
            done = [self._song_done(step_dir, "base", it) for it in items]
            # LoRA: a base song cut by the time box is made again next round, so cache only a complete set.
            # Full fine-tuning: the step-0 songs are all the base there will ever be; keep what there is.
            if base_cache is None and (all(done) or (any(done) and not self._is_lora)):
                base_cache = self._store_base_cache(step_dir, items)
            elif base_cache is not None:
                for it in items:
                    cached = base_cache / f"base_{it.index}.wav"
                    if cached.is_file():
                        self._copy_song(cached, step_dir / f"base_{it.index}.wav")
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
        """The fixed demo set, built once: configured items, else validation items, else the built-in lyrics."""
        if self.items is not None:
            return self.items
        s = self.settings
        from songbloom.text.vocab import Vocabulary

        vocab = Vocabulary(list(self.sb_cfg.model.lyric_vocab))
        items: list[DemoItem] = []
        for i, spec in enumerate(s.items):
            items.append(self._configured_item(i, dict(spec), vocab))
        if not items:
            items = self._validation_items(trainer, vocab)
        if not items:
            for i, text in enumerate(BUILTIN_LYRICS[: max(1, s.num_items)]):
                items.append(DemoItem(i, vocab.tokenize(text).ids, text, s.seed + i))
        self.items = items
        return items

    def _configured_item(self, i: int, spec: dict[str, Any], vocab) -> DemoItem:
        unknown = sorted(set(spec) - {"lyrics", "language", "processed", "prompt", "seed"})
        if unknown or "lyrics" not in spec:
            raise ValueError(f"callbacks.demo_audio.items[{i}]: needs 'lyrics'; optional language, processed, "
                             f"prompt, seed (unknown keys {unknown})")
        text = str(spec["lyrics"])
        if not spec.get("processed", False):
            from songbloom.text.g2p import process_lyrics

            text = process_lyrics(text, language=spec.get("language"))
        tok = vocab.tokenize(text)
        if tok.dropped:
            logger.warning("demo item %d: %d lyric items not in the vocabulary were dropped: %s", i,
                           len(tok.dropped), tok.dropped[:10])
        prompt = None
        if spec.get("prompt"):
            from songbloom.inference.prompt import load_prompt_audio, prompt_moments

            wav = load_prompt_audio(spec["prompt"], self.sb_cfg.sr, self.sb_cfg.prompt_len)
            prompt = prompt_moments(self._demo_vae(), wav)
        return DemoItem(i, tok.ids, str(spec["lyrics"]), int(spec.get("seed", self.settings.seed + i)), prompt)

    def _validation_items(self, trainer: L.Trainer, vocab) -> list[DemoItem]:
        from songbloom.inference.prompt import PromptMoments
        from songbloom.training.batch import as_training_batch

        dm = getattr(trainer, "datamodule", None)
        if dm is None or not hasattr(dm, "val_dataloader"):
            return []
        items: list[DemoItem] = []
        with torch.random.fork_rng(devices=[]):
            try:
                loader = dm.val_dataloader()
            except Exception as e:
                logger.info("demo audio: no validation data to borrow lyrics from (%s)", e)
                return []
            for batch in loader:
                b = as_training_batch(batch)
                for r in range(b.batch_size):
                    if len(items) >= self.settings.num_items:
                        return items
                    ids = b.lyric_ids[r].tolist()
                    prompt = None
                    if b.prompt_latents is not None:
                        n = int(b.prompt_lengths[r]) if b.prompt_lengths is not None else b.prompt_latents.shape[-1]
                        if n > 0:
                            lat = b.prompt_latents[r : r + 1, :, :n].float().cpu()
                            prompt = PromptMoments(lat, torch.full_like(lat, -20.0))  # the mean, ~no spread
                    text = " ".join(vocab.items[i] for i in ids if 0 < i < len(vocab))
                    items.append(DemoItem(len(items), ids, text, self.settings.seed + len(items), prompt))
                if len(items) >= self.settings.num_items:
                    break
        return items

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
                self._copy_song(step_dir / f"base_{it.index}.wav", base / f"base_{it.index}.wav")
        atomic_write_json(base / "fingerprint.json", self._base_fingerprint())
        return base

    @staticmethod
    def _song_done(step_dir: Path, which: str, item: DemoItem) -> bool:
        return (step_dir / f"{which}_{item.index}.wav").is_file()

    @staticmethod
    def _copy_song(src: Path, dst: Path) -> None:
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.resolve() != dst.resolve():
            shutil.copyfile(src, dst)
            if src.with_suffix(".png").is_file():
                shutil.copyfile(src.with_suffix(".png"), dst.with_suffix(".png"))

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


# ---------------------------------------------------------------------------------------------- wiring
class FinishWandbRun(L.Callback):
    """Close the W&B run when fit ends: its offline files are then complete on disk, and a later run in the same
    process (a resume, a test) starts its own run instead of Lightning silently reusing this one."""

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        from lightning.pytorch.loggers import WandbLogger

        if stage != "fit" or not trainer.is_global_zero:
            return
        for lg in trainer.loggers:
            if isinstance(lg, WandbLogger) and lg._experiment is not None:
                try:
                    lg.experiment.finish()
                except Exception as e:  # closing the logger must not turn a finished run into a failure
                    logger.warning("closing the W&B run failed: %s", e)


def progress_bar(cfg: Mapping[str, Any] | None, trainer_cfg: Mapping[str, Any]) -> L.Callback | None:
    """A console progress bar: Rich on a terminal, TQDM updated every N steps in a log file (non-TTY)."""
    if trainer_cfg.get("enable_progress_bar", True) is False:
        return None  # Lightning refuses a progress-bar callback when the trainer disables the bar
    from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar

    cfg = dict(cfg or {})
    tty = sys.stdout.isatty()
    kind = cfg.get("kind", "auto")
    rate = cfg.get("refresh_rate")
    if rate is None:
        rate = 1 if tty else int(cfg.get("log_file_every_n_steps", 50))
    if kind == "rich" or (kind == "auto" and tty):
        return RichProgressBar(refresh_rate=int(rate))
    if kind not in ("auto", "rich", "tqdm"):
        raise ValueError(f"callbacks.progress_bar.kind={kind!r}: choose auto, rich or tqdm")
    return TQDMProgressBar(refresh_rate=int(rate))


def build_training_callbacks(c: Mapping[str, Any], run_dir: str | Path, sb_cfg: SongBloomConfig) -> list[L.Callback]:
    """This module's callbacks from the run config: demo audio, progress bar, optional per-group LR monitor.

    The training module already logs ``train/lr`` and throughput (``train/audio_seconds_per_s``,
    ``train/tokens_per_s``) every step; ``callbacks.lr_monitor: true`` adds Lightning's per-group LR too.
    """
    cb_cfg = dict(c.get("callbacks") or {})
    out: list[L.Callback] = []
    bar = progress_bar(cb_cfg.get("progress_bar"), c.get("trainer") or {})
    if bar is not None:
        out.append(bar)
    has_logger = (c.get("logger") or {}).get("kind", "none") != "none"
    if cb_cfg.get("lr_monitor") and has_logger:
        from lightning.pytorch.callbacks import LearningRateMonitor

        out.append(LearningRateMonitor(logging_interval="step"))
    if (c.get("logger") or {}).get("kind") == "wandb":
        out.append(FinishWandbRun())
    settings = DemoAudioSettings.from_config(cb_cfg.get("demo_audio"))
    if settings.enabled:
        demo_exp = bool((c.get("demo") or {}).get("enabled"))
        out.append(DemoAudioCallback(settings, sb_cfg, run_dir, demo_experiment=demo_exp))
    return out
