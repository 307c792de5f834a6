"""The user's own held-out songs for the recovery report: read from a JSONL, encoded once, cached.

Each line is ``{"audio": <full song>, "lyrics": ..., "prompt_wav": <optional>, "idx": <optional>,
"language": <optional>}`` (``audio_path`` is read as ``audio``, so a training manifest works as it is). Relative
paths are looked up in the current folder, then beside the JSONL. Without ``prompt_wav`` the first ``prompt_len``
seconds of the song are its style prompt, as in training. A song is encoded as the base model sees it: VAE
latents (posterior means) of the song, MuQ features of its mono mix at the VAE rate (the corpus's frame rule),
lyric ids through the same text front end as ``infer.py`` and the corpus, and the prompt's latents. Encodings are
cached in the work folder (keyed by everything that decides them), so a rerun of the report encodes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from songbloom.checkpoints.safe_load import load_safetensors, safetensors_metadata
from songbloom.inference.jobs import (
    ItemProblem,
    JobItem,
    RunSummary,
    encode_item_lyrics,
    parse_jsonl_line,
    resolve_prompt_path,
)
from songbloom.sketch.alignment import ALIGNMENT_RULE, num_vae_frames
from songbloom.sketch.features import MuQFeatureExtractor, to_mono
from songbloom.sketch.muq_backbone import muq_fingerprint
from songbloom.text.lyric_policy import jsonl_language
from songbloom.utils.atomic import atomic_write
from songbloom.utils.provenance import path_fingerprint

logger = logging.getLogger(__name__)

CACHE_VERSION = 1


@dataclass
class HeldoutItem:
    """One usable line of the held-out JSONL."""

    line: int
    name: str
    audio: Path
    lyrics: str
    prompt: Path | None
    language: str | None


@dataclass
class HeldoutSong:
    """One encoded song: ``latents[:, f]`` and ``features[:, f]`` are frame f (whole patches only)."""

    name: str
    latents: torch.Tensor  # float32 [C, F]
    features: torch.Tensor  # float32 [L, F, D], rows in the order of the layers asked for
    layers: tuple[int, ...]
    lyric_ids: list[int]
    prompt_latents: torch.Tensor | None  # float32 [C, Fp]

    @property
    def num_frames(self) -> int:
        return int(self.latents.shape[-1])

    def layer(self, layer: int) -> torch.Tensor:
        """``[F, D]`` features of one MuQ layer."""
        return self.features[self.layers.index(layer)]


# ------------------------------------------------------------------------------------------------ the file
def _item(obj: object, line: int, jsonl: Path, seen: set[str], need_lyrics: bool) -> HeldoutItem | str:
    """The item of one parsed line, or why it cannot be used (naming the field)."""
    if not isinstance(obj, dict):
        return f"expected a JSON object with audio{' and lyrics' if need_lyrics else ''}, got {type(obj).__name__}"
    audio_raw = obj.get("audio", obj.get("audio_path"))
    if not isinstance(audio_raw, str) or not audio_raw:
        return "field 'audio' (a full song; 'audio_path' is read too) is missing or not a string"
    if need_lyrics and (not isinstance(obj.get("lyrics"), str) or not obj["lyrics"].strip()):
        return "field 'lyrics' is missing, empty or not a string"
    audio = resolve_prompt_path(audio_raw, jsonl)
    if audio is None:
        return f"audio {audio_raw!r} not found (looked in {Path.cwd()} and {jsonl.resolve().parent}); fix the path"
    prompt = None
    if obj.get("prompt_wav") not in (None, ""):
        if not isinstance(obj["prompt_wav"], str) or (prompt := resolve_prompt_path(obj["prompt_wav"], jsonl)) is None:
            return f"prompt_wav {obj['prompt_wav']!r} not found; fix the path or leave the field out"
    language, problem = jsonl_language(obj)
    if problem:
        return problem
    name = str(obj.get("idx", audio.stem))
    if name in seen:
        return f"duplicate idx {name!r}; give each line its own idx"
    seen.add(name)
    lyrics = obj.get("lyrics")
    return HeldoutItem(line, name, audio, lyrics if isinstance(lyrics, str) else "", prompt, language)


def read_heldout(path: str | os.PathLike, *, flag: str = "--heldout",
                 need_lyrics: bool = True) -> tuple[list[HeldoutItem], list[ItemProblem]]:
    """Parse the held-out JSONL; every bad line becomes a problem naming file, line and field. ``flag`` names the
    option the file came from in messages; ``need_lyrics=False`` reads lines that only need their audio."""
    jsonl = Path(path)
    try:
        data = jsonl.read_bytes()
    except OSError as e:
        raise FileNotFoundError(f"{flag} {jsonl}: cannot read it ({e})") from e
    items: list[HeldoutItem] = []
    problems: list[ItemProblem] = []
    seen: set[str] = set()
    for n, raw in enumerate(data.splitlines(), start=1):
        try:
            obj = parse_jsonl_line(raw)
        except ValueError as e:
            problems.append(ItemProblem(str(jsonl), n, None, str(e)))
            continue
        if obj is None:
            continue
        got = _item(obj, n, jsonl, seen, need_lyrics)
        if isinstance(got, str):
            idx = obj.get("idx") if isinstance(obj, dict) else None
            problems.append(ItemProblem(str(jsonl), n, None if idx is None else str(idx), got))
        else:
            items.append(got)
    for p in problems:
        logger.error("%s song skipped: %s", flag, p)
    return items, problems


# ------------------------------------------------------------------------------------------------ encoding
def read_audio(path: Path, sample_rate: int, max_seconds: float | None) -> torch.Tensor:
    """``[C, T]`` float32 at ``sample_rate`` (mono or stereo; more channels are averaged to mono), cut to
    ``max_seconds``. Read with soundfile; ValueError naming the file when it cannot be used."""
    import soundfile as sf
    import torchaudio.functional as AF

    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises several types by format
        raise ValueError(f"{path}: cannot read audio ({e}); convert it to WAV or FLAC") from e
    if data.shape[0] == 0:
        raise ValueError(f"{path}: the audio file is empty")
    wav = torch.from_numpy(data.T.copy())
    if not bool(torch.isfinite(wav).all()):
        raise ValueError(f"{path}: NaN or infinite samples; the file is damaged")
    if wav.shape[0] > 2:
        wav = wav.mean(0, keepdim=True)
    if max_seconds is not None:
        wav = wav[:, : int(round(max_seconds * sr))]
    if sr != sample_rate:
        wav = AF.resample(wav, int(sr), int(sample_rate))
    return wav


class HeldoutEncoder:
    """Encodes held-out songs with a base model's VAE and text front end and a MuQ, caching each song."""

    def __init__(self, bundle, extractor: MuQFeatureExtractor, layers: tuple[int, ...], cache_dir: Path, *,
                 max_seconds: float | None = None, lyrics_policy: str = "warn", language: str | None = None):
        self.bundle, self.extractor, self.cache_dir = bundle, extractor, Path(cache_dir)
        self.layers = extractor.check_layers(layers)
        self.max_seconds = float(bundle.config.max_dur if max_seconds is None else max_seconds)
        self.lyrics_policy, self.language = lyrics_policy, language
        self.block = int(bundle.config.model.block_size)
        self.summary = RunSummary()
        self._identity = {
            "version": CACHE_VERSION,
            "vae": _module_digest(bundle.vae),
            "vocab": hashlib.sha256("\n".join(bundle.vocab.items).encode()).hexdigest()[:16],
            "lyric_max_len": int(bundle.config.model.lyric_max_len),
            "prompt_len": float(bundle.config.prompt_len),
            "muq": muq_fingerprint(extractor.muq),
            "layers": list(self.layers),
            "max_seconds": self.max_seconds,
            "alignment_rule": ALIGNMENT_RULE,
            "lyrics_policy": lyrics_policy,
            "language": language,
        }

    def _key(self, item: HeldoutItem) -> str:
        prompt = None if item.prompt is None else path_fingerprint(item.prompt)
        body = {**self._identity, "audio": path_fingerprint(item.audio), "lyrics": item.lyrics, "prompt": prompt,
                "item_language": item.language}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:20]

    def encode(self, items: list[HeldoutItem], jsonl: Path) -> tuple[list[HeldoutSong], list[str]]:
        """(encoded songs, why the others were skipped: ``file:line (idx): reason``)."""
        songs, skipped = [], []
        for item in items:
            path = self.cache_dir / f"{item.name}-{self._key(item)}.safetensors"
            try:
                song = _load_cached(path, item.name, self.layers) if path.is_file() else None
                if song is None:
                    song = self._encode_one(item, jsonl)
                    if song is not None:
                        _save_cached(path, song)
            except ValueError as e:
                skipped.append(f"{jsonl}:{item.line} (idx {item.name}): {e}")
                logger.error("held-out song skipped: %s", skipped[-1])
                continue
            if song is None:
                skipped.append(str(self.summary.problems[-1]))
                continue
            songs.append(song)
        return songs, skipped

    @torch.no_grad()
    def _encode_one(self, item: HeldoutItem, jsonl: Path) -> HeldoutSong | None:
        bundle = self.bundle
        job = JobItem(item.line, item.name, item.lyrics, item.audio, item.language)
        ids = encode_item_lyrics(job, jsonl, bundle, self.summary, policy=self.lyrics_policy, language=self.language)
        if ids is None:
            return None
        sr = int(bundle.vae.sample_rate)
        wav = read_audio(item.audio, sr, self.max_seconds)
        frames = min(num_vae_frames(wav.shape[-1], sr), wav.shape[-1] // int(bundle.vae.downsampling_ratio))
        frames = frames // self.block * self.block
        if frames == 0:
            raise ValueError(f"{item.audio}: shorter than one patch ({self.block} frames); give a longer song")
        vae_device = next(bundle.vae.parameters()).device
        latents = bundle.vae.encode(wav[None].to(vae_device), sample=False)[0, :, :frames].float().cpu()
        feats = self.extractor.extract_many_layers([to_mono(wav)], sr, self.layers)[0]  # [F, L, D]
        # Rounded to float16 as the cache stores them (and as the corpus does by default): a cached rerun is exact.
        feats = feats[:frames].permute(1, 0, 2).to(torch.float16).float().contiguous()
        if latents.shape[-1] != frames or feats.shape[1] != frames:
            raise ValueError(f"{item.audio}: {latents.shape[-1]} latent and {feats.shape[1]} feature frames, "
                             f"expected {frames}; is the VAE's frame rate 25 Hz?")
        return HeldoutSong(item.name, latents, feats, self.layers, list(ids), self._prompt(item, wav, vae_device))

    def _prompt(self, item: HeldoutItem, wav: torch.Tensor, vae_device: torch.device) -> torch.Tensor | None:
        from songbloom.inference.prompt import PromptAudioError, load_prompt_audio, prompt_moments

        sr, seconds = int(self.bundle.vae.sample_rate), float(self.bundle.config.prompt_len)
        if item.prompt is not None:
            try:
                prompt = load_prompt_audio(item.prompt, sr, seconds)
            except PromptAudioError as e:
                raise ValueError(f"prompt: {e}") from e
        else:
            prompt = wav.mean(0, keepdim=True)[:, : int(seconds * sr)]  # the song's own start, as in training
        dtype = next(self.bundle.model.parameters()).dtype
        moments = prompt_moments(self.bundle.vae, prompt.to(vae_device), dtype)
        return None if moments is None else moments.mean[0].float().cpu()


def _module_digest(module: torch.nn.Module) -> str:
    from songbloom.utils.provenance import update_with_sampled_tensors

    h = hashlib.sha256()
    update_with_sampled_tensors(h, module.state_dict())
    return h.hexdigest()[:16]


def _save_cached(path: Path, song: HeldoutSong) -> None:
    from safetensors.torch import save

    tensors = {"latents": song.latents.contiguous(), "features": song.features.to(torch.float16).contiguous(),
               "lyric_ids": torch.tensor(song.lyric_ids, dtype=torch.long)}
    if song.prompt_latents is not None:
        tensors["prompt_latents"] = song.prompt_latents.contiguous()
    data = save(tensors, metadata={"layers": json.dumps(list(song.layers))})
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: f.write(data), binary=True)


def _load_cached(path: Path, name: str, layers: tuple[int, ...]) -> HeldoutSong | None:
    """The cached song, or None (logged) when the file cannot be used: it is encoded again."""
    try:
        stored = tuple(json.loads(safetensors_metadata(path)["layers"]))
        t = load_safetensors(path)
        if stored != layers:
            raise ValueError(f"layers {stored}, expected {layers}")
        return HeldoutSong(name, t["latents"].float(), t["features"].float(), layers, t["lyric_ids"].tolist(),
                           t["prompt_latents"].float() if "prompt_latents" in t else None)
    except Exception as e:  # a damaged cache file is redone, never trusted
        logger.warning("%s: unusable cached encoding (%s); encoding the song again", path, e)
        return None
