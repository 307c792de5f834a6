"""Codebook training: cache MuQ features per clip, fit minibatch k-means over them, write the artifact.

Everything lives in a work directory so an interrupted run resumes where it stopped: extracted
features (one safetensors file per clip, keyed by the clip's identity), the k-means state with its
epoch/file cursor, and the list of skipped clips. A work directory refuses to be reused with a
different configuration, so stale features can never leak into a new codebook.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn
from tqdm.auto import tqdm

from songbloom.checkpoints.safe_load import load_safetensors, safetensors_metadata, safetensors_shape
from songbloom.sketch.artifact import (
    NORMALISATIONS,
    SketchCodebook,
    build_metadata,
    check_num_pitch,
    normalise_features,
    save_codebook,
)
from songbloom.sketch.features import MuQFeatureExtractor
from songbloom.sketch.kmeans import MiniBatchKMeans, nearest_code
from songbloom.sketch.metrics import CodebookMetrics, MetricsAccumulator
from songbloom.sketch.muq_backbone import MUQ_WEIGHTS_LICENCE, muq_fingerprint
from songbloom.sketch.sources import AudioItem, SkippedItem, load_audio

logger = logging.getLogger(__name__)

_STATE_FILE = "kmeans_state.safetensors"
_RUN_FILE = "run.json"


@dataclass
class CodebookTrainingConfig:
    """Knobs of one codebook training run; the ones that change the result are part of the work-dir signature."""

    num_codes: int
    layer: int = -1
    normalisation: str = "standardize"
    epochs: int = 3
    batch_frames: int = 4096
    shuffle_buffer_frames: int = 65536  # frames pooled from several clips before shuffling into minibatches
    init: str = "kmeans++"
    init_sample_frames: int | None = None  # default: max(4 * num_codes, 2048)
    lloyd_iters: int = 2
    reseed_every: int = 50
    seed: int = 0
    heldout_fraction: float = 0.05
    num_pitch: int | None = None  # when set, the codebook size must equal it
    device: str = "cpu"
    chunk_seconds: float = 30.0
    context_seconds: float = 5.0
    muq_batch_size: int = 8
    files_per_extraction_batch: int = 8
    checkpoint_every_files: int = 200
    feature_cache_dtype: str = "float16"

    def validate(self) -> None:
        problems = []
        if self.num_codes < 1:
            problems.append(f"num_codes={self.num_codes} must be >= 1")
        if self.normalisation not in NORMALISATIONS:
            problems.append(f"normalisation={self.normalisation!r}: choose from {NORMALISATIONS}")
        if self.init not in ("kmeans++", "random"):
            problems.append(f"init={self.init!r}: choose 'kmeans++' or 'random'")
        if self.epochs < 1 or self.batch_frames < 1:
            problems.append("epochs and batch_frames must be >= 1")
        if not 0.0 <= self.heldout_fraction < 1.0:
            problems.append(f"heldout_fraction={self.heldout_fraction} must be in [0, 1)")
        if self.feature_cache_dtype not in ("float16", "float32"):
            problems.append("feature_cache_dtype must be 'float16' or 'float32'")
        if problems:
            raise ValueError("invalid codebook training config:\n  - " + "\n  - ".join(problems))
        if self.num_pitch is not None:
            check_num_pitch(self.num_codes, self.num_pitch)

    @property
    def sample_frames(self) -> int:
        return self.init_sample_frames or max(4 * self.num_codes, 2048)

    def signature(self) -> dict[str, Any]:
        """Fields that make two runs' results differ (device, batching of MuQ and checkpointing do not)."""
        keep = ("num_codes", "layer", "normalisation", "epochs", "batch_frames", "shuffle_buffer_frames", "init",
                "init_sample_frames", "lloyd_iters", "reseed_every", "seed", "heldout_fraction", "chunk_seconds",
                "context_seconds", "feature_cache_dtype")
        return {k: getattr(self, k) for k in keep}


@dataclass
class TrainingResult:
    codebook: SketchCodebook
    metrics: CodebookMetrics
    artifact_path: Path
    metrics_path: Path
    skipped: list[SkippedItem] = field(default_factory=list)
    heldout_is_separate: bool = True


def heldout_split(items: list[AudioItem], fraction: float) -> tuple[list[AudioItem], list[AudioItem]]:
    """Stable split by a hash of each clip's identity within its source (``split_key``: adding clips never moves
    old ones across the split, and the same data in another folder splits the same way)."""
    if fraction <= 0 or len(items) < 2:
        return list(items), []

    def score(item: AudioItem) -> float:
        return int(hashlib.sha1((item.split_key or item.key).encode()).hexdigest()[:12], 16) / float(16**12)

    held = [it for it in items if score(it) < fraction]
    if not held:
        held = [min(items, key=score)]
    held_keys = {it.key for it in held}
    return [it for it in items if it.key not in held_keys], held


class FeatureCache:
    """One safetensors file of MuQ features per clip, named by a hash of the clip key, size and mtime."""

    def __init__(self, root: Path, dtype: str):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.dtype = getattr(torch, dtype)

    def path(self, item: AudioItem) -> Path:
        # The file's size and mtime are part of the name: a clip re-encoded in place is extracted again.
        try:
            st = os.stat(item.path)
            tag = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            tag = "missing"
        return self.root / (hashlib.sha1(f"{item.key}|{tag}".encode()).hexdigest()[:24] + ".safetensors")

    def has(self, item: AudioItem) -> bool:
        return self.path(item).is_file()

    def put(self, item: AudioItem, feats: torch.Tensor) -> None:
        path = self.path(item)
        tmp = path.with_name(path.name + ".tmp")
        save_file({"features": feats.to(self.dtype).contiguous()}, str(tmp), metadata={"key": item.key})
        os.replace(tmp, path)

    def get(self, item: AudioItem) -> torch.Tensor:
        return load_safetensors(self.path(item))["features"].float()

    def num_frames(self, item: AudioItem) -> int:
        return int(safetensors_shape(self.path(item), "features")[0])


class CodebookTrainer:
    """Feature extraction, k-means and artifact writing for one work directory."""

    def __init__(self, cfg: CodebookTrainingConfig, muq: nn.Module, *, muq_model_id: str, work_dir: str | os.PathLike,
                 overwrite: bool = False, progress: bool = True):
        cfg.validate()
        self.cfg = cfg
        self.work_dir = Path(work_dir)
        self.progress = progress
        self.muq_model_id = str(muq_model_id)
        self.extractor = MuQFeatureExtractor(muq, layer=cfg.layer, chunk_seconds=cfg.chunk_seconds,
                                             context_seconds=cfg.context_seconds, batch_size=cfg.muq_batch_size,
                                             device=cfg.device)
        self.muq_fingerprint = muq_fingerprint(muq)
        self._prepare_work_dir(overwrite)
        self.cache = FeatureCache(self.work_dir / "features", cfg.feature_cache_dtype)

    # ------------------------------------------------------------------ work directory
    def _run_record(self) -> dict[str, Any]:
        return {"config": self.cfg.signature(), "muq_model_id": self.muq_model_id,
                "muq_fingerprint": self.muq_fingerprint, "muq_layer": self.extractor.layer}

    def _prepare_work_dir(self, overwrite: bool) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        run_file = self.work_dir / _RUN_FILE
        record = self._run_record()
        if run_file.is_file() and not overwrite:
            old = json.loads(run_file.read_text())
            if old != record:
                diff = sorted(k for k in set(old.get("config", {})) | set(record["config"])
                              if old.get("config", {}).get(k) != record["config"].get(k))
                other = [k for k in ("muq_model_id", "muq_fingerprint", "muq_layer") if old.get(k) != record[k]]
                raise ValueError(
                    f"work dir {self.work_dir} holds a run with a different configuration (differs in {diff + other}); "
                    "use a new --work-dir, or --overwrite to discard it"
                )
            logger.info("resuming codebook training in %s", self.work_dir)
        elif overwrite and run_file.is_file():
            for p in (self.work_dir / _STATE_FILE, run_file):
                p.unlink(missing_ok=True)
            for p in (self.work_dir / "features").glob("*.safetensors"):
                p.unlink()
        run_file.write_text(json.dumps(record, indent=2, sort_keys=True))

    # ------------------------------------------------------------------ features
    def extract_features(self, items: list[AudioItem], desc: str = "MuQ features") -> tuple[list[AudioItem],
                                                                                         list[SkippedItem]]:
        """Fill the cache for ``items``; returns the usable items and the skipped ones (with reasons)."""
        todo = [it for it in items if not self.cache.has(it)]
        skipped: list[SkippedItem] = []
        step = self.cfg.files_per_extraction_batch
        bar = tqdm(total=len(todo), desc=desc, unit="clip", disable=not self.progress or not todo)
        for b in range(0, len(todo), step):
            group = todo[b : b + step]
            loaded: dict[int, list[tuple[AudioItem, torch.Tensor]]] = {}
            for item in group:
                try:
                    wav, sr = load_audio(item)
                except ValueError as exc:
                    skipped.append(SkippedItem(item.key, str(exc)))
                    continue
                if wav.shape[-1] * 25 // sr == 0:
                    skipped.append(SkippedItem(item.key, f"too short ({wav.shape[-1]} samples at {sr} Hz < 1 frame)"))
                    continue
                loaded.setdefault(sr, []).append((item, wav))
            for sr, pairs in loaded.items():
                feats = self.extractor.extract_many([w for _, w in pairs], sr)
                for (item, _), f in zip(pairs, feats):
                    self.cache.put(item, f)
            bar.update(len(group))
        bar.close()
        skipped_keys = {s.key for s in skipped}
        # A clip skipped on an earlier run (no cache file) is retried above, so this is complete.
        usable = [it for it in items if it.key not in skipped_keys and self.cache.has(it)]
        if skipped:
            logger.warning("skipped %d of %d clips (see skipped.jsonl in %s)", len(skipped), len(items), self.work_dir)
        return usable, skipped

    # ------------------------------------------------------------------ k-means
    def _sample_frames(self, items: list[AudioItem]) -> torch.Tensor:
        """Up to ``sample_frames`` frames spread evenly over the clips (seeded)."""
        g = torch.Generator().manual_seed(self.cfg.seed)
        total = sum(self.cache.num_frames(it) for it in items)
        want = min(self.cfg.sample_frames, total)
        pieces = []
        for it in items:
            f = self.cache.get(it)
            n = max(1, round(f.shape[0] * want / total)) if f.shape[0] else 0
            if n:
                pieces.append(f[torch.randperm(f.shape[0], generator=g)[:n]])
        sample = torch.cat(pieces)
        return sample[torch.randperm(sample.shape[0], generator=g)[:want]]

    def _init_state(self, items: list[AudioItem]) -> tuple[MiniBatchKMeans, torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        sample = self._sample_frames(items)
        if cfg.normalisation == "standardize":
            mean, std = sample.mean(0), sample.std(0).clamp_min(1e-5)
        else:
            mean, std = torch.zeros(sample.shape[1]), torch.ones(sample.shape[1])
        x = normalise_features(sample, cfg.normalisation, mean, std)
        km = MiniBatchKMeans(cfg.num_codes, x.shape[1], seed=cfg.seed, device=cfg.device, reseed_every=cfg.reseed_every)
        if cfg.init == "kmeans++":
            km.init_kmeans_plus_plus(x, lloyd_iters=cfg.lloyd_iters)
        else:
            km.init_random(x)
        return km, mean, std

    @staticmethod
    def _items_digest(items: list[AudioItem]) -> str:
        return hashlib.sha1("\n".join(it.key for it in items).encode()).hexdigest()[:16]

    def _save_state(self, km: MiniBatchKMeans, mean: torch.Tensor, std: torch.Tensor, epoch: int, cursor: int,
                    items_digest: str) -> None:
        state = {f"km.{k}": v for k, v in km.state_dict().items()}
        state.update({"mean": mean, "std": std, "epoch": torch.tensor(epoch), "cursor": torch.tensor(cursor)})
        path = self.work_dir / _STATE_FILE
        tmp = path.with_name(path.name + ".tmp")
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata={"items_digest": items_digest})
        os.replace(tmp, path)

    def _load_state(self, items_digest: str) -> tuple[MiniBatchKMeans, torch.Tensor, torch.Tensor, int, int] | None:
        path = self.work_dir / _STATE_FILE
        if not path.is_file():
            return None
        saved_digest = safetensors_metadata(path).get("items_digest")
        if saved_digest != items_digest:
            raise ValueError(
                f"the usable training clips differ from those of the checkpoint in {self.work_dir} (clips were added, "
                "removed or newly skipped); restore the clip list or start over with --overwrite"
            )
        state = load_safetensors(path)
        km_state = {k[3:]: v for k, v in state.items() if k.startswith("km.")}
        km = MiniBatchKMeans(self.cfg.num_codes, km_state["centers"].shape[1], seed=self.cfg.seed,
                             device=self.cfg.device, reseed_every=self.cfg.reseed_every)
        km.load_state_dict(km_state)
        return km, state["mean"], state["std"], int(state["epoch"]), int(state["cursor"])

    def fit(self, items: list[AudioItem]) -> tuple[MiniBatchKMeans, torch.Tensor, torch.Tensor]:
        """Minibatch k-means over the cached features of ``items``, resuming from the saved state if any."""
        cfg = self.cfg
        digest = self._items_digest(items)
        loaded = self._load_state(digest)
        if loaded is None:
            km, mean, std = self._init_state(items)
            epoch, cursor = 0, 0
            self._save_state(km, mean, std, epoch, cursor, digest)
        else:
            km, mean, std, epoch, cursor = loaded
            logger.info("resumed k-means at epoch %d, clip %d (step %d)", epoch, cursor, km.steps)
        while epoch < cfg.epochs:
            epoch_rng = torch.Generator().manual_seed(cfg.seed * 1009 + epoch)
            order = torch.randperm(len(items), generator=epoch_rng).tolist()
            allow_reseed = cfg.epochs == 1 or epoch < cfg.epochs - 1  # the last epoch only refines
            buffer: list[torch.Tensor] = []
            buffered = 0
            last_mse = float("nan")
            bar = tqdm(total=len(items), initial=cursor, desc=f"k-means epoch {epoch + 1}/{cfg.epochs}", unit="clip",
                       disable=not self.progress)

            def consume(final: bool, position: int) -> float:
                nonlocal buffer, buffered
                if not buffer:
                    return float("nan")
                x = torch.cat(buffer)
                g = torch.Generator().manual_seed(cfg.seed * 7919 + epoch * 100003 + position)
                x = x[torch.randperm(x.shape[0], generator=g)]
                usable = x.shape[0] if final else (x.shape[0] // cfg.batch_frames) * cfg.batch_frames
                mse = float("nan")
                for s in range(0, usable, cfg.batch_frames):
                    mse = km.partial_fit(x[s : s + cfg.batch_frames], allow_reseed=allow_reseed)
                buffer = [x[usable:]] if usable < x.shape[0] else []
                buffered = x.shape[0] - usable
                return mse

            for position in range(cursor, len(items)):
                f = normalise_features(self.cache.get(items[order[position]]), cfg.normalisation, mean, std)
                buffer.append(f)
                buffered += f.shape[0]
                done = position + 1
                if buffered >= cfg.shuffle_buffer_frames:
                    last_mse = consume(False, done)
                if done % cfg.checkpoint_every_files == 0 or done == len(items):
                    last_mse = consume(True, done)  # a checkpoint never holds buffered frames
                    next_epoch, next_cursor = (epoch + 1, 0) if done == len(items) else (epoch, done)
                    self._save_state(km, mean, std, next_epoch, next_cursor, digest)
                bar.update(1)
                bar.set_postfix(mse=f"{last_mse:.4f}", reseeded=km.total_reseeded)
            bar.close()
            epoch, cursor = epoch + 1, 0
        return km, mean, std

    # ------------------------------------------------------------------ evaluation and the whole run
    def evaluate(self, items: list[AudioItem], centers: torch.Tensor, mean: torch.Tensor,
                 std: torch.Tensor) -> CodebookMetrics:
        acc = MetricsAccumulator(centers.shape[0])
        centers = centers.to(self.cfg.device)
        for it in items:
            x = normalise_features(self.cache.get(it), self.cfg.normalisation, mean, std).to(self.cfg.device)
            ids, dist = nearest_code(x, centers)
            acc.update(ids, dist, x)
        return acc.compute()

    def run(self, train_items: list[AudioItem], out_path: str | os.PathLike, *,
            heldout_items: list[AudioItem] | None = None, source_skipped: list[SkippedItem] = (),
            sources: dict[str, list[str]] | None = None) -> TrainingResult:
        """Split (unless held-out clips are given), extract, fit, evaluate and save artifact + metrics."""
        t0 = time.time()
        if heldout_items is None:
            train_items, heldout_items = heldout_split(train_items, self.cfg.heldout_fraction)
        train_ok, skipped_train = self.extract_features(train_items, "MuQ features (train)")
        held_ok, skipped_held = self.extract_features(heldout_items, "MuQ features (held-out)")
        skipped = list(source_skipped) + skipped_train + skipped_held
        with (self.work_dir / "skipped.jsonl").open("w", encoding="utf-8") as fh:
            for s in skipped:
                fh.write(json.dumps(dataclasses.asdict(s)) + "\n")
        if not train_ok:
            raise ValueError(f"no usable training audio ({len(skipped)} clips skipped; "
                             f"see {self.work_dir}/skipped.jsonl)")
        frames = sum(self.cache.num_frames(it) for it in train_ok)
        if frames < self.cfg.num_codes:
            raise ValueError(f"only {frames} training frames for {self.cfg.num_codes} codes: "
                             "add audio or lower the codebook size")
        km, mean, std = self.fit(train_ok)
        separate = bool(held_ok)
        if not separate:
            logger.warning("no held-out clips: metrics are computed on the training clips and will look optimistic")
        metrics = self.evaluate(held_ok or train_ok, km.centers, mean, std)
        training = {
            "num_train_clips": len(train_ok), "num_heldout_clips": len(held_ok), "num_train_frames": frames,
            "train_hours": round(frames / 25 / 3600, 4), "num_skipped": len(skipped), "sources": sources or {},
            "config": self.cfg.signature(), "kmeans_steps": km.steps, "codes_reseeded": km.total_reseeded,
            "wall_seconds": round(time.time() - t0, 2),
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "heldout_metrics": metrics.to_dict(), "metrics_on_heldout": separate,
        }
        meta = build_metadata(centers=km.centers.cpu(), mean=mean, std=std, muq_model_id=self.muq_model_id,
                              muq_fingerprint=self.muq_fingerprint, muq_layer=self.extractor.layer,
                              muq_licence=MUQ_WEIGHTS_LICENCE, feature_normalisation=self.cfg.normalisation,
                              training=training)
        codebook = SketchCodebook(centers=km.centers.cpu(), mean=mean, std=std, metadata=meta)
        artifact = save_codebook(out_path, codebook)
        metrics_path = metrics_path_for(artifact)
        metrics_path.write_text(json.dumps({"codebook_hash": meta["codebook_hash"], "metrics_on_heldout": separate,
                                            **metrics.to_dict()}, indent=2))
        return TrainingResult(codebook, metrics, artifact, metrics_path, skipped, separate)


def metrics_path_for(artifact: str | os.PathLike) -> Path:
    """Metrics live beside the artifact: ``codebook.safetensors`` -> ``codebook.metrics.json``."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name.removesuffix(".safetensors") + ".metrics.json")
