"""The ``demo`` experiment's bookends: build a tiny dataset before training, generate a song after it.

Before: synthetic songs (``songbloom.data.synthetic``) -> a codebook over a tiny random MuQ
(``songbloom.sketch``) -> shards encoded with a tiny random VAE (``VAEConfig.tiny()``, release frame geometry)
(``songbloom.data.preprocess``). After: the sampler (``songbloom.inference``) generates one song from the
trained weights and the same VAE. Each of those APIs is called from exactly one function below.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from songbloom.checkpoints.vae import demo_vae
from songbloom.config import SongBloomConfig
from songbloom.config.run import DemoConfig, RunConfig, as_run_config
from songbloom.utils.ranks import global_rank

logger = logging.getLogger(__name__)

DEMO_MUQ_SEED = 0
# The demo song is written with its DC offset removed and its peak at this level (see ``listenable``).
DEMO_PEAK_DBFS = -1.0


def _make_songs(out: Path, demo: DemoConfig, sb_cfg: SongBloomConfig, seed: int) -> Path:
    from songbloom.data.synthetic import make_synthetic_dataset

    lo, hi = demo.song_seconds
    return make_synthetic_dataset(
        out,
        num_songs=int(demo.num_songs),
        min_seconds=float(lo),
        max_seconds=float(hi),
        sample_rate=sb_cfg.sr,
        seconds_per_tag=sb_cfg.seconds_per_tag,
        lyric_style="phoneme",
        seed=seed,
    )


def _train_codebook(manifest: Path, out: Path, work: Path, num_codes: int, seed: int) -> Path:
    from songbloom.data.manifest import read_manifest
    from songbloom.sketch import CodebookTrainer, CodebookTrainingConfig, build_tiny_muq
    from songbloom.sketch.sources import AudioItem

    records, _problems = read_manifest(manifest)
    items = [AudioItem(key=r.idx, path=r.audio_path) for r in records]
    cfg = CodebookTrainingConfig(num_codes=num_codes, num_pitch=num_codes, epochs=2, seed=seed, heldout_fraction=0.1)
    trainer = CodebookTrainer(
        cfg,
        build_tiny_muq(seed=DEMO_MUQ_SEED),
        muq_model_id="tiny-random-muq",
        work_dir=work,
        overwrite=True,
        progress=False,
    )
    trainer.run(items, out)
    return out


def _preprocess(manifest: Path, codebook: Path, out: Path, sb_cfg: SongBloomConfig) -> Path:
    from songbloom.data.encoders import Encoders, PhonemeLyricsProcessor, SketchTokenizerEncoder, VAELatentEncoder
    from songbloom.data.preprocess import PreprocessConfig, run_preprocess
    from songbloom.sketch import SketchTokenizer, build_tiny_muq

    m = sb_cfg.model
    enc = Encoders(
        latent=VAELatentEncoder(demo_vae()),
        lyrics=PhonemeLyricsProcessor(policy="warn", max_len=m.lyric_max_len),
        sketch=SketchTokenizerEncoder(SketchTokenizer.from_artifact(codebook, muq=build_tiny_muq(seed=DEMO_MUQ_SEED))),
    )
    cfg = PreprocessConfig(
        out_dir=str(out),
        block_size=m.block_size,
        seconds_per_tag=sb_cfg.seconds_per_tag,
        segment_seconds=sb_cfg.max_dur,
        prompt_seconds=sb_cfg.prompt_len,
        lyric_max_len=m.lyric_max_len,
        num_pitch=m.num_pitch,
        val_fraction=None,  # one song held out from three songs on (preprocess.tasks.auto_split)
    )
    report = run_preprocess([manifest], cfg, enc)
    logger.info("demo shards: %s", report)
    return out


def prepare_demo_data(c: RunConfig | Mapping[str, Any], sb_cfg: SongBloomConfig) -> dict[str, Any]:
    """Build (once) the demo's songs, codebook and shards; returns the ``data`` config to train on them."""
    rc = as_run_config(c)
    demo = rc.demo
    root = Path(rc.paths.data_dir) / "demo"
    shards = root / "shards"
    stamp = root / "ready.json"
    recipe = {
        "num_songs": demo.num_songs,
        "song_seconds": list(demo.song_seconds),
        "codebook_size": demo.codebook_size,
        "seed": rc.seed,
    }
    if not (stamp.is_file() and json.loads(stamp.read_text()) == recipe):
        logger.info("demo: generating %s synthetic songs, a codebook and shards under %s", demo.num_songs, root)
        manifest = _make_songs(root / "songs", demo, sb_cfg, rc.seed)
        codebook = _train_codebook(
            manifest,
            root / "codebook.safetensors",
            root / "codebook_work",
            int(demo.codebook_size or sb_cfg.model.num_pitch),
            rc.seed,
        )
        _preprocess(manifest, codebook, shards, sb_cfg)
        stamp.write_text(json.dumps(recipe))
    from songbloom.training.data import SHARDS_TARGET, shards_keys

    keep = set(shards_keys())  # the synthetic block's batch size, workers and seed carry over
    data = {k: v for k, v in rc.data.items() if k in keep}
    data.update(_target_=SHARDS_TARGET, shards_dir=str(shards), max_frames=int(sb_cfg.max_dur * sb_cfg.frame_rate))
    return data


def prepare_demo_data_once(
    c: RunConfig | Mapping[str, Any], sb_cfg: SongBloomConfig, *, timeout_s: float = 1800.0
) -> dict[str, Any]:
    """Rank 0 builds the demo data; other ranks wait for its ``ready.json`` (two ranks writing the same shard
    files would race), then reuse it."""
    if global_rank() == 0:
        return prepare_demo_data(c, sb_cfg)
    root = Path(as_run_config(c).paths.data_dir) / "demo"
    deadline = time.monotonic() + timeout_s
    while not (root / "ready.json").is_file():
        if time.monotonic() > deadline:
            raise TimeoutError(f"rank {global_rank()}: rank 0 did not finish the demo data in {root} "
                               f"within {timeout_s:.0f} s; check rank 0's log")
        time.sleep(1.0)
    return prepare_demo_data(c, sb_cfg)


def generate_demo_song(
    export_dir: Path, sb_cfg: SongBloomConfig, out_path: Path, lyric_ids: list[int], *, seconds: float, seed: int = 0
) -> Path:
    """Generate one song with the sampler from the exported generator."""
    import soundfile as sf

    from songbloom.checkpoints.bundle import SongBloom
    from songbloom.checkpoints.formats.merged import load_merged_generator
    from songbloom.inference.generate import SamplingParams
    from songbloom.inference.pipeline import SongBloomPipeline, SongRequest
    from songbloom.text.vocab import Vocabulary

    model = load_merged_generator(export_dir, sb_cfg)
    bundle = SongBloom(
        config=sb_cfg, model=model, vae=demo_vae(), vocab=Vocabulary(list(sb_cfg.model.lyric_vocab))
    )
    params = SamplingParams.from_inference_config(sb_cfg.inference, max_frames=seconds * sb_cfg.frame_rate)
    result = SongBloomPipeline(bundle, params).generate([SongRequest("demo", list(lyric_ids), None, seed=seed)])[0]
    audio, note = listenable(result.audio)
    logger.info("demo song: %s", note)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(out_path), audio.T.numpy(), result.sample_rate, subtype="PCM_16")
    return out_path


def listenable(audio, peak_dbfs: float = DEMO_PEAK_DBFS):
    """``(audio, note)``: the demo song with each channel's mean removed and its peak scaled to ``peak_dbfs``.

    Why: the demo decodes with the tiny *random* VAE (:func:`songbloom.checkpoints.vae.demo_vae`), whose decoder
    adds a constant offset from its random biases (about +1.3 and +1.0 of full scale) and barely depends on the
    latent; written as it came, the song was a clipped DC offset (73 % of samples at full scale). A real VAE does
    not do this, so only the demo song is conditioned here, and ``note`` says what was changed.
    """
    audio = audio.detach().float().cpu()
    dc = audio.mean(dim=-1, keepdim=True)
    centred = audio - dc
    peak = float(centred.abs().max()) if centred.numel() else 0.0
    gain = (10.0 ** (peak_dbfs / 20.0)) / peak if peak > 1e-6 else 1.0
    offsets = ", ".join(f"{float(v):+.3f}" for v in dc.flatten())
    note = (
        f"removed the DC offset ({offsets} of full scale per channel; the tiny random demo VAE's decoder adds it) "
        f"and scaled the peak to {peak_dbfs:.1f} dBFS (gain {gain:.3g})"
    )
    return centred * gain, note
