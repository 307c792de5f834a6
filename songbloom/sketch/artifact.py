"""The sketch codebook as a versioned safetensors artifact, and the checks other stages run against it.

The content hash covers everything that decides which id a frame gets (tokenizer kind, its tensors,
normalisation statistics, MuQ identity and layer, frame rule), and nothing else, so token caches and shards
that record it can be validated against the codebook that is loaded later.

Two tokenizer kinds (``tokenizer_kind`` in the metadata; files without it are ``nearest_centroid``):

- ``nearest_centroid``: the id of the nearest centre (``codebook [K, D]``) to the normalised feature; what
  k-means writes. Its hash is computed exactly as format version 1 computed it, so a k-means codebook keeps
  its hash and is still written as version 1 (older songbloom reads it) unless it carries a recovery block.
- ``linear_probe``: ``argmax(W x + b)`` over the normalised feature (``probe_weight [K, D]``,
  ``probe_bias [K]``); ``codebook`` may hold class-mean centres for diagnostics. Format version 2. An optional
  ``switch_bonus`` in the metadata (hashed when present) decodes each sequence as a whole, adding that many nats
  per change of code (:mod:`songbloom.sketch.switch_decoding`); files without it decode frame by frame.

A codebook recovered from a base model's own sketch ids also records a ``recovery`` block: which base weights
(and the sha256 of their sketch tables, see :mod:`songbloom.building.sketch_tables`), the method, the corpus and
its metrics. Training keeps those tables when the run starts from the same ones.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from songbloom.building.sketch_tables import RecoveredCodebook
from songbloom.checkpoints.safe_load import check_file_integrity
from songbloom.sketch.alignment import ALIGNMENT_RULE, FRAME_RATE, MUQ_SAMPLE_RATE
from songbloom.sketch.kmeans import nearest_code, squared_distances
from songbloom.sketch.switch_decoding import decode_with_switch_bonus

logger = logging.getLogger(__name__)

ARTIFACT_FORMAT = "songbloom.sketch_codebook"
ARTIFACT_VERSION = 2
"""The newest format version this code reads and writes (files get the lowest version that describes them)."""
NORMALISATIONS = ("none", "l2", "standardize")
RELEASE_NUM_PITCH = 16384
NEAREST_CENTROID = "nearest_centroid"
LINEAR_PROBE = "linear_probe"
TOKENIZER_KINDS = (NEAREST_CENTROID, LINEAR_PROBE)
RECOVERY_KEY = "recovery"
SWITCH_BONUS_KEY = "switch_bonus"
# Fields of the metadata that change token ids; the hash covers exactly these plus the tensors.
_HASHED_FIELDS = ("codebook_size", "feature_dim", "muq_model_id", "muq_fingerprint", "muq_layer",
                  "feature_normalisation", "muq_sample_rate", "frame_rate", "alignment_rule")
# Tensors of each kind: required, then optional; the hash reads them in this order.
_KIND_TENSORS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    NEAREST_CENTROID: (("codebook", "feature_mean", "feature_std"), ()),
    LINEAR_PROBE: (("probe_weight", "probe_bias", "feature_mean", "feature_std"), ("codebook",)),
}
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 4096


@dataclass
class SketchCodebook:
    """A tokenizer from MuQ frames to sketch ids: the normalisation plus centres or a linear probe.

    ``centers`` are required for ``nearest_centroid``; a ``linear_probe`` has ``probe_weight [K, D]`` and
    ``probe_bias [K]`` and may keep class-mean ``centers`` for diagnostics only.
    """

    centers: torch.Tensor | None  # [K, D] float32
    mean: torch.Tensor  # [D], zeros unless normalisation == "standardize"
    std: torch.Tensor  # [D], ones unless normalisation == "standardize"
    metadata: dict[str, Any] = field(default_factory=dict)
    probe_weight: torch.Tensor | None = None  # [K, D]
    probe_bias: torch.Tensor | None = None  # [K]

    @property
    def tokenizer_kind(self) -> str:
        return str(self.metadata.get("tokenizer_kind", NEAREST_CENTROID))

    @property
    def num_codes(self) -> int:
        return int(self._ids_matrix().shape[0])

    @property
    def feature_dim(self) -> int:
        return int(self._ids_matrix().shape[1])

    @property
    def codebook_hash(self) -> str:
        return str(self.metadata["codebook_hash"])

    @property
    def recovery(self) -> dict[str, Any] | None:
        """The recovery block (which base model's sketch ids this codebook reproduces), or None."""
        return recovered_from(self.metadata)

    def _ids_matrix(self) -> torch.Tensor:
        m = self.probe_weight if self.tokenizer_kind == LINEAR_PROBE else self.centers
        if m is None:
            raise ValueError(f"a {self.tokenizer_kind} codebook needs "
                             f"{'probe_weight' if self.tokenizer_kind == LINEAR_PROBE else 'centers'}")
        return m

    def normalise(self, features: torch.Tensor) -> torch.Tensor:
        """Apply the training-time feature normalisation to ``[..., D]`` features."""
        return normalise_features(features, self.metadata["feature_normalisation"], self.mean, self.std)

    def _prepared(self, features: torch.Tensor, normalised: bool) -> tuple[torch.Size, torch.Tensor]:
        if features.shape[-1] != self.feature_dim:
            raise ValueError(f"features have dim {features.shape[-1]}, codebook expects {self.feature_dim}")
        x = features.reshape(-1, features.shape[-1]).float()
        return features.shape[:-1], (x if normalised else self.normalise(x))

    def _chunk_scores(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, K]`` scores of normalised rows (higher is better)."""
        if self.tokenizer_kind == LINEAR_PROBE:
            w, b = self.probe_weight.to(x.device), self.probe_bias.to(x.device)  # type: ignore[union-attr]
            return torch.addmm(b, x, w.T)
        return -squared_distances(x, self._ids_matrix().to(x.device))

    @torch.no_grad()
    def scores(self, features: torch.Tensor, *, normalised: bool = False) -> torch.Tensor:
        """``[..., D]`` MuQ features -> ``[..., K]`` scores, higher = better: minus the squared distance to each
        centre (``nearest_centroid``) or the probe's logits (``linear_probe``). ``normalised``: already
        passed through :meth:`normalise`."""
        lead, x = self._prepared(features, normalised)
        return self._chunk_scores(x).reshape(*lead, -1)

    @torch.no_grad()
    def quantize(self, features: torch.Tensor, *, normalised: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``[..., D]`` -> (ids ``[...]``, a per-frame fit ``[...]``), chunked to bound memory.

        The fit is the squared distance to the chosen centre for ``nearest_centroid`` (lower = better) and the
        logit margin of the chosen code over the runner-up for ``linear_probe`` (higher = surer).
        """
        lead, x = self._prepared(features, normalised)
        if self.tokenizer_kind == NEAREST_CENTROID:
            ids, fit = nearest_code(x, self._ids_matrix().to(x.device), chunk=_CHUNK)
            return ids.reshape(lead), fit.reshape(lead)
        # With a switch bonus each sequence (the last lead axis) is one block, decoded whole from its scores.
        whole_songs = bool(self.switch_bonus) and len(lead) >= 1
        block = max(1, lead[-1]) if whole_songs else _CHUNK
        ids, fit = [], []
        for s in range(0, x.shape[0], block):
            scores = self._chunk_scores(x[s : s + block])
            top = scores.topk(min(2, self.num_codes), dim=-1)
            second = top.values[:, 1] if self.num_codes > 1 else top.values[:, 0]
            fit.append(top.values[:, 0] - second)
            ids.append(decode_with_switch_bonus(torch.log_softmax(scores, -1), self.switch_bonus) if whole_songs
                       else top.indices[:, 0])
        if not ids:
            return torch.zeros(lead, dtype=torch.long, device=x.device), torch.zeros(lead, device=x.device)
        return torch.cat(ids).reshape(lead), torch.cat(fit).reshape(lead)

    @property
    def switch_bonus(self) -> float:
        """Nats added per change of code when decoding a sequence (0: frame by frame; ``linear_probe`` only)."""
        return float(self.metadata.get(SWITCH_BONUS_KEY) or 0.0)

    def assign(self, features: torch.Tensor, *, normalised: bool = False) -> torch.Tensor:
        """``[..., D]`` MuQ features -> LongTensor ``[...]`` of sketch ids (the best-scoring code; with a
        :attr:`switch_bonus`, the best path along the second-to-last axis, which must then be time)."""
        return self.quantize(features, normalised=normalised)[0]

    @torch.no_grad()
    def topk(self, features: torch.Tensor, k: int, *, normalised: bool = False) -> torch.Tensor:
        """``[..., D]`` -> LongTensor ``[..., k]``: the ``k`` best codes per frame, best first."""
        if not 1 <= int(k) <= self.num_codes:
            raise ValueError(f"k={k}: choose 1..{self.num_codes} (the codebook size)")
        lead, x = self._prepared(features, normalised)
        out = [self._chunk_scores(x[s : s + _CHUNK]).topk(int(k), dim=-1).indices for s in range(0, x.shape[0], _CHUNK)]
        ids = torch.cat(out) if out else torch.zeros(0, int(k), dtype=torch.long, device=x.device)
        return ids.reshape(*lead, int(k))

    def to(self, device: str | torch.device) -> SketchCodebook:
        """A copy whose tensors live on ``device`` (same metadata), so scoring moves nothing per call."""
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return dataclasses.replace(self, centers=move(self.centers), mean=move(self.mean), std=move(self.std),
                                   probe_weight=move(self.probe_weight), probe_bias=move(self.probe_bias))

    def tensors(self) -> dict[str, torch.Tensor]:
        """The tensors as the artifact stores them (float32, CPU), by their file names."""
        named = {"codebook": self.centers, "feature_mean": self.mean, "feature_std": self.std,
                 "probe_weight": self.probe_weight, "probe_bias": self.probe_bias}
        required, optional = _KIND_TENSORS[_known_kind(self.tokenizer_kind, "codebook")]
        missing = [n for n in required if named[n] is None]
        if missing:
            raise ValueError(f"a {self.tokenizer_kind} codebook needs tensors {missing}")
        return {n: named[n].detach().to("cpu", torch.float32).contiguous()  # type: ignore[union-attr]
                for n in (*required, *optional) if named[n] is not None}

    # ------------------------------------------------------------------ builders
    @classmethod
    def nearest_centroid(cls, centers: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, *, muq_model_id: str,
                         muq_fingerprint: str, muq_layer: int, muq_licence: str, feature_normalisation: str,
                         recovery: Mapping[str, Any] | None = None,
                         training: Mapping[str, Any] | None = None) -> SketchCodebook:
        """A nearest-centroid codebook with its metadata and hash (``recovery`` for one indexed by base ids)."""
        centers, mean, std = _f32(centers), _f32(mean), _f32(std)
        meta = build_metadata(centers=centers, mean=mean, std=std, muq_model_id=muq_model_id,
                              muq_fingerprint=muq_fingerprint, muq_layer=muq_layer, muq_licence=muq_licence,
                              feature_normalisation=feature_normalisation, training=training, recovery=recovery)
        return cls(centers=centers, mean=mean, std=std, metadata=meta)

    @classmethod
    def linear_probe(cls, weight: torch.Tensor, bias: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, *,
                     muq_model_id: str, muq_fingerprint: str, muq_layer: int, muq_licence: str,
                     feature_normalisation: str, recovery: Mapping[str, Any] | None = None,
                     training: Mapping[str, Any] | None = None,
                     centers: torch.Tensor | None = None, switch_bonus: float = 0.0) -> SketchCodebook:
        """A linear-probe codebook (ids = argmax of ``weight @ normalise(x) + bias``) with metadata and hash.

        ``centers``: class-mean centres in the normalised space, kept for diagnostics (never used for ids).
        ``switch_bonus``: decode sequences whole with this many nats per change of code (0: frame by frame).
        """
        weight, bias, mean, std = _f32(weight), _f32(bias), _f32(mean), _f32(std)
        centers = None if centers is None else _f32(centers)
        meta = build_probe_metadata(probe_weight=weight, probe_bias=bias, mean=mean, std=std, centers=centers,
                                    muq_model_id=muq_model_id, muq_fingerprint=muq_fingerprint, muq_layer=muq_layer,
                                    muq_licence=muq_licence, feature_normalisation=feature_normalisation,
                                    recovery=recovery, training=training, switch_bonus=switch_bonus)
        return cls(centers=centers, mean=mean, std=std, metadata=meta, probe_weight=weight, probe_bias=bias)


def _f32(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu", torch.float32).contiguous()


def _known_kind(kind: Any, where: str) -> str:
    if kind not in TOKENIZER_KINDS:
        raise ValueError(f"{where}: tokenizer_kind {kind!r} is not known to this songbloom (it knows "
                         f"{', '.join(TOKENIZER_KINDS)}); the codebook was written by a newer version: "
                         "upgrade songbloom")
    return str(kind)


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
    """sha256 (first 16 hex digits) of a nearest-centroid codebook: its token-defining fields and tensors' bytes.

    The version-1 rule, unchanged, so k-means codebooks keep their hashes (and shards that recorded them stay valid).
    """
    digest = hashlib.sha256()
    defining = {k: meta.get(k) for k in _HASHED_FIELDS}
    digest.update(json.dumps(defining, sort_keys=True).encode())
    for t in (centers, mean, std):
        digest.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def codebook_content_hash(meta: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> str:
    """The artifact hash for any tokenizer kind: its kind, token-defining fields and every tensor it stores.

    ``nearest_centroid`` keeps the version-1 rule (:func:`compute_codebook_hash`); any other kind hashes its
    name, the fields and each tensor's name, shape and float32 bytes in a fixed order, so no two kinds collide.
    """
    kind = _known_kind(meta.get("tokenizer_kind", NEAREST_CENTROID), "codebook metadata")
    if kind == NEAREST_CENTROID:
        return compute_codebook_hash(meta, tensors["codebook"], tensors["feature_mean"], tensors["feature_std"])
    digest = hashlib.sha256()
    defining = {"tokenizer_kind": kind, **{k: meta.get(k) for k in _HASHED_FIELDS}}
    if meta.get(SWITCH_BONUS_KEY):  # hashed only when present, so probe files without it keep their hashes
        defining[SWITCH_BONUS_KEY] = float(meta[SWITCH_BONUS_KEY])
    digest.update(json.dumps(defining, sort_keys=True).encode())
    required, optional = _KIND_TENSORS[kind]
    for name in (*required, *optional):
        if name in tensors:
            t = tensors[name].detach().to("cpu", torch.float32).contiguous()
            digest.update(f"{name}:{tuple(t.shape)}\n".encode())
            digest.update(t.numpy().tobytes())
    return digest.hexdigest()[:16]


def _base_metadata(*, kind: str, num_codes: int, feature_dim: int, muq_model_id: str, muq_fingerprint: str,
                   muq_layer: int, muq_licence: str, feature_normalisation: str,
                   recovery: Mapping[str, Any] | None, training: Mapping[str, Any] | None) -> dict[str, Any]:
    if feature_normalisation not in NORMALISATIONS:
        raise ValueError(f"unknown feature normalisation {feature_normalisation!r}; choose from {NORMALISATIONS}")
    plain = kind == NEAREST_CENTROID and recovery is None
    meta: dict[str, Any] = {
        "format": ARTIFACT_FORMAT,
        "format_version": 1 if plain else ARTIFACT_VERSION,
        "tokenizer_kind": kind,
        "codebook_size": int(num_codes),
        "feature_dim": int(feature_dim),
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
    if recovery is not None:
        meta[RECOVERY_KEY] = check_recovery(recovery, codebook_size=int(num_codes))
    return meta


def build_metadata(*, centers: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, muq_model_id: str,
                   muq_fingerprint: str, muq_layer: int, muq_licence: str, feature_normalisation: str,
                   training: Mapping[str, Any] | None = None,
                   recovery: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Full metadata of a nearest-centroid artifact, hash included."""
    meta = _base_metadata(kind=NEAREST_CENTROID, num_codes=centers.shape[0], feature_dim=centers.shape[1],
                          muq_model_id=muq_model_id, muq_fingerprint=muq_fingerprint, muq_layer=muq_layer,
                          muq_licence=muq_licence, feature_normalisation=feature_normalisation, recovery=recovery,
                          training=training)
    meta["codebook_hash"] = compute_codebook_hash(meta, centers, mean, std)
    return meta


def build_probe_metadata(*, probe_weight: torch.Tensor, probe_bias: torch.Tensor, mean: torch.Tensor,
                         std: torch.Tensor, muq_model_id: str, muq_fingerprint: str, muq_layer: int, muq_licence: str,
                         feature_normalisation: str, centers: torch.Tensor | None = None,
                         recovery: Mapping[str, Any] | None = None,
                         training: Mapping[str, Any] | None = None, switch_bonus: float = 0.0) -> dict[str, Any]:
    """Full metadata of a linear-probe artifact (version 2), hash included."""
    k, d = probe_weight.shape
    _check_probe_shapes("linear probe", probe_weight, probe_bias, mean, std, centers)
    if not math.isfinite(switch_bonus):
        raise ValueError(f"switch_bonus must be a finite number of nats, got {switch_bonus}")
    meta = _base_metadata(kind=LINEAR_PROBE, num_codes=k, feature_dim=d, muq_model_id=muq_model_id,
                          muq_fingerprint=muq_fingerprint, muq_layer=muq_layer, muq_licence=muq_licence,
                          feature_normalisation=feature_normalisation, recovery=recovery, training=training)
    if switch_bonus:
        meta[SWITCH_BONUS_KEY] = float(switch_bonus)
    tensors = {"probe_weight": probe_weight, "probe_bias": probe_bias, "feature_mean": mean, "feature_std": std}
    if centers is not None:
        tensors["codebook"] = centers
    meta["codebook_hash"] = codebook_content_hash(meta, tensors)
    return meta


def _check_probe_shapes(where: str, weight: torch.Tensor, bias: torch.Tensor, mean: torch.Tensor,
                        std: torch.Tensor, centers: torch.Tensor | None) -> None:
    if weight.ndim != 2:
        raise ValueError(f"{where}: probe_weight must be [K, D], got {tuple(weight.shape)}")
    k, d = weight.shape
    expected = {"probe_bias": (bias, (k,)), "feature_mean": (mean, (d,)), "feature_std": (std, (d,))}
    if centers is not None:
        expected["codebook"] = (centers, (k, d))
    for name, (t, shape) in expected.items():
        if tuple(t.shape) != shape:
            raise ValueError(f"{where}: {name} has shape {tuple(t.shape)}, expected {shape} for a [{k}, {d}] probe")


# ---------------------------------------------------------------------- the recovery block
def check_recovery(recovery: Mapping[str, Any], *, codebook_size: int | None = None,
                   where: str = "recovery") -> dict[str, Any]:
    """A checked copy of a recovery block (see the module doc); a missing or mistyped field raises, naming it.

    ``{"base": {"name", "sketch_tables_sha256", "num_pitch", "file_fingerprint"}, "method",
    "corpus": {"songs", "frames", "seconds"}, "metrics"}``; more fields are kept as they are.
    """
    if not isinstance(recovery, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {type(recovery).__name__}")
    base = _field(recovery, "base", Mapping, where)
    _field(base, "name", str, f"{where}.base")
    sha = _field(base, "sketch_tables_sha256", str, f"{where}.base")
    if not _SHA256.fullmatch(sha):
        raise ValueError(f"{where}.base.sketch_tables_sha256={sha!r}: expected 64 lowercase hex digits "
                         "(songbloom.building.sketch_tables.sketch_tables_sha256 of the base weights)")
    num_pitch = _field(base, "num_pitch", int, f"{where}.base")
    if base.get("file_fingerprint") is not None and not isinstance(base["file_fingerprint"], Mapping):
        raise ValueError(f"{where}.base.file_fingerprint: expected a mapping or null")
    _field(recovery, "method", str, where)
    corpus = _field(recovery, "corpus", Mapping, where)
    for key, typ in (("songs", int), ("frames", int), ("seconds", (int, float))):
        _field(corpus, key, typ, f"{where}.corpus")
    _field(recovery, "metrics", Mapping, where)
    if codebook_size is not None and int(codebook_size) != num_pitch:
        raise ValueError(f"{where}: the codebook has {codebook_size} codes but its base model's num_pitch is "
                         f"{num_pitch}; a recovered codebook has one code per base sketch id")
    out = json.loads(json.dumps(dict(recovery)))  # plain JSON types, detached from the caller's objects
    out["base"].setdefault("file_fingerprint", None)
    return out


def _field(block: Mapping[str, Any], key: str, typ: type | tuple[type, ...], where: str) -> Any:
    value = block.get(key)
    if value is None or isinstance(value, bool) or not isinstance(value, typ):
        names = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
        raise ValueError(f"{where}.{key}: expected {names}, got {value!r}")
    return value


def recovered_from(meta: Mapping[str, Any]) -> dict[str, Any] | None:
    """The checked recovery block of a codebook's metadata (None for a codebook that was not recovered)."""
    block = meta.get(RECOVERY_KEY)
    if block is None:
        return None
    return check_recovery(block, codebook_size=meta.get("codebook_size"))


def recovered_codebook(path: str | os.PathLike) -> RecoveredCodebook | None:
    """What training needs to know of a codebook file: the base tables it was recovered from (None: not
    recovered). Reads and verifies the whole artifact; an unreadable file raises."""
    meta = read_codebook_metadata(path)
    block = recovered_from(meta)
    if block is None:
        return None
    return RecoveredCodebook(codebook_hash=str(meta["codebook_hash"]), base_name=str(block["base"]["name"]),
                             sketch_tables_sha256=str(block["base"]["sketch_tables_sha256"]))


def recovered_codebook_for_run(path: str | os.PathLike, *, quiet: bool = False) -> RecoveredCodebook | None:
    """:func:`recovered_codebook` for a training run: a file that cannot be read is logged and counted as not
    recovered (the sketch tables then train, as for any new codebook); the run's input checks judge the file."""
    try:
        return recovered_codebook(path)
    except (OSError, ValueError, KeyError) as e:
        (logger.debug if quiet else logger.warning)(
            "sketch codebook %s: metadata unreadable (%s); treating it as a codebook that was not recovered from "
            "the init weights, so the sketch tables train in full", path, e)
        return None


# ---------------------------------------------------------------------- files
def save_codebook(path: str | os.PathLike, codebook: SketchCodebook) -> Path:
    """Write the artifact atomically (temp file + rename), so a crash never leaves half a codebook."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = codebook.tensors()
    version = int(codebook.metadata.get("format_version", ARTIFACT_VERSION))
    header = {"format": ARTIFACT_FORMAT, "format_version": str(version),
              "codebook_hash": codebook.codebook_hash, "metadata_json": json.dumps(codebook.metadata, sort_keys=True)}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=header)
    os.replace(tmp, path)
    logger.info("saved sketch codebook %s (%s, %d codes, hash %s)", path, codebook.tokenizer_kind,
                codebook.num_codes, codebook.codebook_hash)
    return path


def _read_file(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    if not path.is_file():
        raise FileNotFoundError(f"sketch codebook {path} not found (train one with `python -m songbloom.sketch train`)")
    check_file_integrity(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k).float() for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for non-safetensors files
        raise ValueError(f"{path}: not a readable safetensors file ({exc})") from exc
    return header, tensors


def _header_metadata(path: Path, header: Mapping[str, str]) -> tuple[dict[str, Any], str]:
    """The metadata (with ``tokenizer_kind`` filled in for version-1 files) and the tokenizer kind."""
    if header.get("format") != ARTIFACT_FORMAT:
        raise ValueError(f"{path}: not a songbloom sketch codebook (format={header.get('format')!r})")
    try:
        version = int(header.get("format_version", -1))
        meta = json.loads(header["metadata_json"])
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable codebook header ({exc}); restore or retrain the codebook") from exc
    if version > ARTIFACT_VERSION:
        raise ValueError(f"{path}: artifact format version {version} is newer than this code "
                         f"({ARTIFACT_VERSION}); upgrade songbloom")
    kind = _known_kind(meta.get("tokenizer_kind", NEAREST_CENTROID), str(path))
    if kind != NEAREST_CENTROID and version < 2:
        raise ValueError(f"{path}: tokenizer_kind {kind!r} needs format version 2, the file says {version}")
    meta["tokenizer_kind"] = kind
    bonus = meta.get(SWITCH_BONUS_KEY)
    if bonus is not None:
        if kind != LINEAR_PROBE or isinstance(bonus, bool) or not isinstance(bonus, (int, float)) \
                or not math.isfinite(bonus):
            raise ValueError(f"{path}: {SWITCH_BONUS_KEY}={bonus!r} is only valid as a finite number on a "
                             f"{LINEAR_PROBE} codebook (this one is {kind}); restore or refit the codebook")
    return meta, kind


def _check_tensors(path: Path, meta: Mapping[str, Any], kind: str, tensors: Mapping[str, torch.Tensor]) -> None:
    required, optional = _KIND_TENSORS[kind]
    missing = sorted(set(required) - set(tensors))
    if missing:
        raise ValueError(f"{path}: missing tensors {missing} (a {kind} codebook needs {list(required)})")
    unexpected = sorted(set(tensors) - set(required) - set(optional))
    if unexpected:
        raise ValueError(f"{path}: tensors {unexpected} do not belong in a {kind} codebook (edited file?)")
    name = "probe_weight" if kind == LINEAR_PROBE else "codebook"
    shape, declared = tuple(tensors[name].shape), (meta["codebook_size"], meta["feature_dim"])
    if shape != declared:
        raise ValueError(f"{path}: {name} shape {shape} disagrees with its metadata {declared}")
    if kind == LINEAR_PROBE:
        _check_probe_shapes(str(path), tensors["probe_weight"], tensors["probe_bias"], tensors["feature_mean"],
                            tensors["feature_std"], tensors.get("codebook"))


def load_codebook(path: str | os.PathLike) -> SketchCodebook:
    """Read and verify an artifact of any known version and tokenizer kind: format, shapes and content hash."""
    path = Path(path)
    header, tensors = _read_file(path)
    meta, kind = _header_metadata(path, header)
    _check_tensors(path, meta, kind, tensors)
    expected = codebook_content_hash(meta, tensors)
    if expected != meta.get("codebook_hash") or expected != header.get("codebook_hash"):
        raise ValueError(f"{path}: content hash mismatch (stored {meta.get('codebook_hash')}, computed {expected}); "
                         "the file was edited or corrupted: retrain or restore it")
    if meta.get(RECOVERY_KEY) is not None:
        try:
            meta[RECOVERY_KEY] = recovered_from(meta)
        except ValueError as exc:
            raise ValueError(f"{path}: bad recovery block: {exc}") from exc
    return SketchCodebook(centers=tensors.get("codebook"), mean=tensors["feature_mean"], std=tensors["feature_std"],
                          metadata=meta, probe_weight=tensors.get("probe_weight"), probe_bias=tensors.get("probe_bias"))


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
    new to them. Returns False when the base model was trained on exactly this codebook (same hash), or when
    the codebook was recovered from the base's own sketch tables (``base_model_meta['sketch_tables_sha256']``,
    see :func:`songbloom.building.sketch_tables.sketch_tables_sha256`, equals the one it recorded).
    A size mismatch with ``base_model_meta['num_pitch']`` raises, since no retraining can fix that.
    """
    base = dict(base_model_meta or {})
    if "num_pitch" in base and base["num_pitch"] is not None:
        check_num_pitch(artifact_meta["codebook_size"], base["num_pitch"])
    recovery = recovered_from(artifact_meta)
    if recovery is not None and base.get("sketch_tables_sha256") is not None:
        same_tables = recovery["base"]["sketch_tables_sha256"] == base["sketch_tables_sha256"]
        logger.info("codebook %s was recovered from sketch tables %s the base model %s", artifact_meta["codebook_hash"],
                    recovery["base"]["sketch_tables_sha256"][:16], "holds" if same_tables else "does not hold")
        return not same_tables
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
