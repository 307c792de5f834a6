"""Where codebook training audio comes from: a directory, a JSONL manifest (``audio_path``) or tar shards."""

from __future__ import annotations

import io
import json
import logging
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")


@dataclass(frozen=True)
class AudioItem:
    """One clip: a file, or a member of a tar shard (``member`` set)."""

    key: str  # stable identity used for caching (the resolved path)
    path: str
    member: str | None = None
    # Identity within its source, independent of where the data lives (the held-out split hashes it): the path
    # relative to the audio folder or the manifest's folder, or "<shard file name>::<member>". Default: ``key``.
    split_key: str | None = None


@dataclass(frozen=True)
class SkippedItem:
    key: str
    reason: str


def list_directory(root: str | os.PathLike) -> list[AudioItem]:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"audio directory {root} does not exist")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
    return [AudioItem(key=str(p.resolve()), path=str(p.resolve()), split_key=p.relative_to(root).as_posix())
            for p in files]


def list_manifest(manifest: str | os.PathLike) -> tuple[list[AudioItem], list[SkippedItem]]:
    """Read ``audio_path`` from each JSONL line (relative paths are relative to the manifest's folder)."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise FileNotFoundError(f"manifest {manifest} does not exist")
    items, skipped = [], []
    for lineno, raw in enumerate(manifest.read_bytes().splitlines(), start=1):  # one bad line stays one line
        where = f"{manifest}:{lineno}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            skipped.append(SkippedItem(where, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column "
                                              f"{exc.start + 1}); save the manifest as UTF-8"))
            continue
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            skipped.append(SkippedItem(where, f"invalid JSON ({exc.msg}); write one JSON object per line"))
            continue
        audio = record.get("audio_path") if isinstance(record, dict) else None
        if not isinstance(audio, str) or not audio:
            skipped.append(SkippedItem(where, "missing string field 'audio_path'; give each line an audio file path"))
            continue
        path = Path(audio)
        if not path.is_absolute():
            path = manifest.parent / path
        items.append(
            AudioItem(key=str(path.resolve()), path=str(path.resolve()), split_key=_relative_key(path, manifest.parent))
        )
    return items, skipped


def list_shard(shard: str | os.PathLike, member_suffix: str | None = None) -> list[AudioItem]:
    """Audio members of a tar shard (webdataset layout ``<key>.<name>.flac`` or plain files).

    ``member_suffix`` (e.g. ``.audio.flac``) keeps only the song audio when shards also carry prompts or stems.
    """
    shard = Path(shard)
    if not shard.is_file():
        raise FileNotFoundError(f"shard {shard} does not exist")
    with tarfile.open(shard) as tar:
        wanted = (member_suffix.lower(),) if member_suffix else AUDIO_EXTENSIONS
        members = sorted(m.name for m in tar.getmembers() if m.isfile() and m.name.lower().endswith(wanted))
    resolved = str(shard.resolve())
    return [AudioItem(key=f"{resolved}::{m}", path=resolved, member=m, split_key=f"{shard.name}::{m}") for m in members]


def _relative_key(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when it lies inside it (else as resolved): where the data lives drops out."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def collect_items(*, audio_dirs: list[str] = (), manifests: list[str] = (),
                  shards: list[str] = (), shard_member_suffix: str | None = None,
                  ) -> tuple[list[AudioItem], list[SkippedItem]]:
    """All items from all sources, de-duplicated by key, in a stable order."""
    items: list[AudioItem] = []
    skipped: list[SkippedItem] = []
    for d in audio_dirs:
        items += list_directory(d)
    for m in manifests:
        got, bad = list_manifest(m)
        items += got
        skipped += bad
    for s in shards:
        items += list_shard(s, shard_member_suffix)
    seen: dict[str, AudioItem] = {}
    for item in items:
        seen.setdefault(item.key, item)
    if len(seen) < len(items):
        logger.info("dropped %d duplicate audio entries", len(items) - len(seen))
    return list(seen.values()), skipped


def load_audio(item: AudioItem) -> tuple[torch.Tensor, int]:
    """Mono float32 ``[T]`` and its sample rate. Raises with the item's key on unreadable audio."""
    try:
        if item.member is None:
            data, sr = sf.read(item.path, dtype="float32", always_2d=True)
        else:
            with tarfile.open(item.path) as tar:
                fh = tar.extractfile(item.member)
                if fh is None:
                    raise ValueError("member is not a regular file")
                data, sr = sf.read(io.BytesIO(fh.read()), dtype="float32", always_2d=True)
    except Exception as exc:
        raise ValueError(f"{item.key}: cannot read audio ({exc}); convert it to WAV or FLAC") from exc
    mono = np.ascontiguousarray(data.mean(axis=1))
    if not np.isfinite(mono).all():
        raise ValueError(f"{item.key}: audio contains NaN or inf samples")
    return torch.from_numpy(mono), int(sr)
