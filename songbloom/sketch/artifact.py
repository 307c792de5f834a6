"""The sketch codebook as a versioned safetensors artifact, and the checks other stages run against it.

The content hash covers everything that decides which id a frame gets (centres, normalisation
statistics, MuQ identity and layer, frame rule), and nothing else, so token caches and shards that
record it can be validated against the codebook that is loaded later.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from songbloom.checkpoints.safe_load import check_file_integrity
from songbloom.sketch.alignment import ALIGNMENT_RULE, FRAME_RATE, MUQ_SAMPLE_RATE

logger = logging.getLogger(__name__)

ARTIFACT_FORMAT = "songbloom.sketch_codebook"
ARTIFACT_VERSION = 1
NORMALISATIONS = ("none", "l2", "standardize")
RELEASE_NUM_PITCH = 16384
# Fields of the metadata that change token ids; the hash covers exactly these plus the tensors.
_HASHED_FIELDS = ("codebook_size", "feature_dim", "muq_model_id", "muq_fingerprint", "muq_layer",
                  "feature_normalisation", "muq_sample_rate", "frame_rate", "alignment_rule")


@dataclass
class SketchCodebook:
    """Centres plus the normalisation that maps a MuQ frame into their space."""

    centers: torch.Tensor  # [K, D] float32
    mean: torch.Tensor  # [D], zeros unless normalisation == "standardize"
    std: torch.Tensor  # [D], ones unless normalisation == "standardize"
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def num_codes(self) -> int:
        return int(self.centers.shape[0])

    @property
    def feature_dim(self) -> int:
        return int(self.centers.shape[1])

    @property
    def codebook_hash(self) -> str:
        return str(self.metadata["codebook_hash"])

    def normalise(self, features: torch.Tensor) -> torch.Tensor:
        """Apply the training-time feature normalisation to ``[..., D]`` features."""
        return normalise_features(features, self.metadata["feature_normalisation"], self.mean, self.std)


def normalise_features(features: torch.Tensor, mode: str, mean: torch.Tensor | None = None,
                       std: torch.Tensor | None = None) -> torch.Tensor:
    """``none``: as is; ``l2``: unit length per frame; ``standardize``: per-dimension z-score with stored stats."""
    x = features.float()
    if mode == "none":
        return x
    if mode == "l2":
        return torch.nn.functional.normalize(x, dim=-1)
    if mode == "standardize":
        if mean is None or std is None:
            raise ValueError("standardize normalisation needs the stored feature mean and std")
        return (x - mean.to(x.device)) / std.to(x.device)
    raise ValueError(f"unknown feature normalisation {mode!r}; choose from {NORMALISATIONS}")


def compute_codebook_hash(meta: Mapping[str, Any], centers: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> str:
    """sha256 (first 16 hex digits) over the token-defining metadata fields and the tensors' bytes."""
    digest = hashlib.sha256()
    defining = {k: meta.get(k) for k in _HASHED_FIELDS}
    digest.update(json.dumps(defining, sort_keys=True).encode())
    for t in (centers, mean, std):
        digest.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def build_metadata(*, centers: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, muq_model_id: str,
                   muq_fingerprint: str, muq_layer: int, muq_licence: str, feature_normalisation: str,
                   training: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Full artifact metadata, hash included."""
    if feature_normalisation not in NORMALISATIONS:
        raise ValueError(f"unknown feature normalisation {feature_normalisation!r}; choose from {NORMALISATIONS}")
    meta: dict[str, Any] = {
        "format": ARTIFACT_FORMAT,
        "format_version": ARTIFACT_VERSION,
        "codebook_size": int(centers.shape[0]),
        "feature_dim": int(centers.shape[1]),
        "muq_model_id": str(muq_model_id),
        "muq_licence": str(muq_licence),
        "muq_fingerprint": str(muq_fingerprint),
        "muq_layer": int(muq_layer),
        "feature_normalisation": feature_normalisation,
        "muq_sample_rate": MUQ_SAMPLE_RATE,
        "frame_rate": FRAME_RATE,
        "alignment_rule": ALIGNMENT_RULE,
        "training": dict(training or {}),
    }
    meta["codebook_hash"] = compute_codebook_hash(meta, centers, mean, std)
    return meta


def save_codebook(path: str | os.PathLike, codebook: SketchCodebook) -> Path:
    """Write the artifact atomically (temp file + rename), so a crash never leaves half a codebook."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {
        "codebook": codebook.centers.detach().to("cpu", torch.float32).contiguous(),
        "feature_mean": codebook.mean.detach().to("cpu", torch.float32).contiguous(),
        "feature_std": codebook.std.detach().to("cpu", torch.float32).contiguous(),
    }
    header = {"format": ARTIFACT_FORMAT, "format_version": str(ARTIFACT_VERSION),
              "codebook_hash": codebook.codebook_hash, "metadata_json": json.dumps(codebook.metadata, sort_keys=True)}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=header)
    os.replace(tmp, path)
    logger.info("saved sketch codebook %s (%d codes, hash %s)", path, codebook.num_codes, codebook.codebook_hash)
    return path


def load_codebook(path: str | os.PathLike) -> SketchCodebook:
    """Read and verify an artifact: format, shapes and content hash must all agree."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sketch codebook {path} not found (train one with `python -m songbloom.sketch train`)")
    check_file_integrity(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for non-safetensors files
        raise ValueError(f"{path}: not a readable safetensors file ({exc})") from exc
    if header.get("format") != ARTIFACT_FORMAT:
        raise ValueError(f"{path}: not a songbloom sketch codebook (format={header.get('format')!r})")
    if int(header.get("format_version", -1)) > ARTIFACT_VERSION:
        raise ValueError(f"{path}: artifact format version {header['format_version']} is newer than this code "
                         f"({ARTIFACT_VERSION}); upgrade songbloom")
    missing = {"codebook", "feature_mean", "feature_std"} - set(tensors)
    if missing:
        raise ValueError(f"{path}: missing tensors {sorted(missing)}")
    meta = json.loads(header["metadata_json"])
    centers, mean, std = tensors["codebook"].float(), tensors["feature_mean"].float(), tensors["feature_std"].float()
    if tuple(centers.shape) != (meta["codebook_size"], meta["feature_dim"]):
        raise ValueError(f"{path}: codebook shape {tuple(centers.shape)} disagrees with its metadata "
                         f"({meta['codebook_size']}, {meta['feature_dim']})")
    expected = compute_codebook_hash(meta, centers, mean, std)
    if expected != meta.get("codebook_hash") or expected != header.get("codebook_hash"):
        raise ValueError(f"{path}: content hash mismatch (stored {meta.get('codebook_hash')}, computed {expected}); "
                         "the file was edited or corrupted: retrain or restore it")
    return SketchCodebook(centers=centers, mean=mean, std=std, metadata=meta)


def read_codebook_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Metadata only (cheap), e.g. for a trainer deciding what to unfreeze."""
    return load_codebook(path).metadata


# ---------------------------------------------------------------------- checks used by the model/trainer
def check_num_pitch(codebook_size: int, num_pitch: int) -> None:
    """Refuse a codebook whose size is not the model's ``num_pitch``.

    Sketch ids 0..num_pitch-1 are codes, ``num_pitch`` is EOS and ``num_pitch + 1`` the pad/special id;
    a smaller codebook silently wastes classifier rows, a larger one indexes past the embedding or
    collides with EOS. (The released models use 16384; the public fork's 129 came from a wrong diagnosis.)
    """
    if int(codebook_size) != int(num_pitch):
        raise ValueError(
            f"sketch codebook has {codebook_size} codes but the model's num_pitch is {num_pitch}: they must be "
            f"equal (ids 0..num_pitch-1 are codes, num_pitch = EOS, num_pitch+1 = pad). Train a codebook with "
            f"--num-codes {num_pitch}, or build the model with num_pitch={codebook_size} "
            f"(released SongBloom models use {RELEASE_NUM_PITCH})."
        )


def sketch_codebook_record(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a checkpoint, token cache or shard stores to say which codebook made its sketch ids."""
    return {
        "sketch_codebook_hash": meta["codebook_hash"],
        "sketch_codebook_size": int(meta["codebook_size"]),
        "sketch_muq_model_id": meta["muq_model_id"],
        "sketch_muq_layer": int(meta["muq_layer"]),
    }


def codebook_requires_retraining(artifact_meta: Mapping[str, Any], base_model_meta: Mapping[str, Any] | None) -> bool:
    """Whether a base model's sketch embedding and classifier must be made trainable for this codebook.

    ``base_model_meta`` is what the base checkpoint recorded (see :func:`sketch_codebook_record`);
    released SongBloom weights record nothing (the official codebook is unpublished), so every codebook is
    new to them. Returns False only when the base model was trained on exactly this codebook (same hash).
    A size mismatch with ``base_model_meta['num_pitch']`` raises, since no retraining can fix that.
    """
    base = dict(base_model_meta or {})
    if "num_pitch" in base and base["num_pitch"] is not None:
        check_num_pitch(artifact_meta["codebook_size"], base["num_pitch"])
    base_hash = base.get("sketch_codebook_hash")
    if base_hash is None:
        logger.info("base model has no recorded sketch codebook (release weights): codebook %s is new to it",
                    artifact_meta["codebook_hash"])
        return True
    same = base_hash == artifact_meta["codebook_hash"]
    if not same:
        logger.info("base model was trained on sketch codebook %s, this one is %s", base_hash,
                    artifact_meta["codebook_hash"])
    return not same
