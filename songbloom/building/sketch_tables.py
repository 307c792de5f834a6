"""The sketch tables of a generator (embedding + classifier): their content hash, and how a LoRA run treats them.

A recovered sketch codebook maps audio to the ids a base model's own tables were trained on. It records the
sha256 of those tables (:func:`sketch_tables_sha256`); when the run's init weights hold the same tables, the
tables are base weights and ``trainable.sketch_embedding: auto`` keeps them (``trainable.recovered_tables``:
frozen, a low learning rate, or LoRA on the classifier). This layer reads no files: the caller reads the
codebook and hands over a :class:`RecoveredCodebook`; the resolved :class:`SketchTablesLayout` is recorded in
checkpoints so a rebuild gives the same layout.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from songbloom.config.run import RECOVERED_TABLES_MODES

logger = logging.getLogger(__name__)

SKETCH_EMBEDDING_KEYS: tuple[str, ...] = ("skeleton_emb.weight",)
SKETCH_CLASSIFIER_KEYS: tuple[str, ...] = (
    "skeleton_classifier.0.weight",
    "skeleton_classifier.2.weight",
    "skeleton_classifier.2.bias",
)
SKETCH_TABLE_KEYS: tuple[str, ...] = SKETCH_EMBEDDING_KEYS + SKETCH_CLASSIFIER_KEYS
"""Generator parameter names of the sketch tables, in the order :func:`sketch_tables_sha256` hashes them."""

SKETCH_CLASSIFIER_LORA_REGEX = r"skeleton_classifier\.(0|2)"
"""The classifier's two Linear layers (``recovered_tables: lora``); the embedding never gets an adapter."""

LAYOUT_MODES = ("train", *RECOVERED_TABLES_MODES)
"""``train``: the tables train in full (a new codebook); the others: kept as base weights (see the module doc)."""

_HASH_FORMAT = b"songbloom.sketch_tables.v1\n"


def _peft_name(name: str) -> str:
    module, _, leaf = name.rpartition(".")
    return f"{module}.base_layer.{leaf}"


def _table_tensors(source: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The four tables by their plain names; a peft-wrapped classifier gives its base layer's tensors."""
    sd = source.state_dict() if isinstance(source, nn.Module) else source
    out = {}
    for name in SKETCH_TABLE_KEYS:
        for candidate in (name, _peft_name(name), f"model.{name}"):
            if candidate in sd:
                out[name] = sd[candidate]
                break
        else:
            raise KeyError(f"sketch table {name} not found (is this a SongBloom generator state dict?)")
    return out


def sketch_tables_sha256(source: nn.Module | Mapping[str, torch.Tensor]) -> str:
    """sha256 (64 hex digits) of the sketch tables: name, shape and float32 bytes of each, in a fixed order.

    ``source``: a generator (LoRA-injected or not: adapters are ignored, the base layers count) or its state
    dict (plain names, peft ``base_layer`` names or a ``model.`` prefix). The dtype held does not matter as
    long as the values do (bf16 values hash as their float32 widening).
    """
    digest = hashlib.sha256(_HASH_FORMAT)
    for name, t in _table_tensors(source).items():
        if t.device.type == "meta":
            raise ValueError(f"sketch table {name} is on the meta device: load the weights before hashing them")
        data = t.detach().to("cpu", torch.float32).contiguous()
        digest.update(f"{name}:{tuple(data.shape)}\n".encode())
        digest.update(memoryview(data.numpy()).cast("B"))  # the bytes in place (no copy of a 100 MB table)
    return digest.hexdigest()


@dataclass(frozen=True)
class RecoveredCodebook:
    """What a recovered sketch codebook says about the tables its ids belong to (read from it by the caller)."""

    codebook_hash: str
    base_name: str
    sketch_tables_sha256: str


@dataclass(frozen=True)
class SketchTablesLayout:
    """How a LoRA run treats the sketch tables, resolved once at the start of the run and stored with it.

    ``mode``: ``train`` (in full, as for a new codebook), ``frozen``, ``low_lr`` (in full at
    ``training.optim.recovered_tables_lr``, no weight decay) or ``lora`` (adapters on the classifier's
    Linear layers, the embedding frozen).
    """

    mode: str
    reason: str
    codebook_hash: str | None = None
    recovered_from: str | None = None
    recorded_sha256: str | None = None
    init_sha256: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in LAYOUT_MODES:
            raise ValueError(f"sketch tables layout mode {self.mode!r}: choose from {LAYOUT_MODES}")

    @property
    def trains_in_full(self) -> bool:
        return self.mode in ("train", "low_lr")

    @property
    def kept(self) -> bool:
        """The tables are the base's (their values only move through a low rate or adapters, if at all)."""
        return self.mode != "train"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SketchTablesLayout:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        if "mode" not in known:
            raise ValueError(f"a recorded sketch tables layout needs a 'mode'; got {dict(d)}")
        known.setdefault("reason", "recorded")
        return cls(**known)


def _setting(value: Any) -> bool | str:
    if value in ("auto", True, False):
        return value
    raise ValueError(f"trainable.sketch_embedding={value!r}: choose auto, true or false")


def _recovered_layout(
    recovered: RecoveredCodebook, mode: str, init_sha256: str | None, init_name: str | None
) -> SketchTablesLayout:
    common = dict(
        codebook_hash=recovered.codebook_hash,
        recovered_from=recovered.base_name,
        recorded_sha256=recovered.sketch_tables_sha256,
        init_sha256=init_sha256,
    )
    if init_sha256 is None:  # no weights to hash (a memory plan on the meta device): judge by the base's name
        same = init_name == recovered.base_name
        how = "predicted from the base name"
    else:
        same = init_sha256 == recovered.sketch_tables_sha256
        how = "sketch tables sha256"
    if same:
        if init_sha256 is not None and init_name != recovered.base_name:
            logger.warning(
                "sketch codebook %s was recovered from %r, the run starts from %r: other base weights, but their "
                "sketch tables are identical (sha256 %s), so the recovered ids fit them: tables kept (%s)",
                recovered.codebook_hash, recovered.base_name, init_name, init_sha256[:16], mode,
            )  # fmt: skip
        reason = f"codebook recovered from these base weights' sketch tables ({how}): kept as base weights ({mode})"
        return SketchTablesLayout(mode=mode, reason=reason, **common)
    if init_sha256 is not None:
        logger.warning(
            "sketch codebook %s was recovered from %r (sketch tables sha256 %s), but the run starts from %r whose "
            "sketch tables differ (sha256 %s): the recovered ids do not fit these tables, so the sketch embedding and "
            "classifier train in full as for any new codebook. Recover a codebook from %r to keep its tables.",
            recovered.codebook_hash, recovered.base_name, recovered.sketch_tables_sha256[:16], init_name,
            init_sha256[:16], init_name,
        )  # fmt: skip
    reason = f"codebook recovered from other sketch tables than the init weights' ({how}): trained as a new codebook"
    return SketchTablesLayout(mode="train", reason=reason, **common)


def resolve_sketch_tables(
    sketch_embedding: Any,
    recovered_tables: str,
    *,
    source: str,
    new_codebook: bool,
    recovered: RecoveredCodebook | None = None,
    init_sha256: str | None = None,
    init_name: str | None = None,
) -> SketchTablesLayout:
    """The layout of the sketch tables in a LoRA run.

    ``sketch_embedding`` (``trainable.sketch_embedding``): ``true``/``false`` decide; ``auto`` keeps the tables
    (``recovered_tables`` says how) when ``recovered`` names the same tables as the init weights
    (``init_sha256``), trains them when it names other tables, and otherwise keeps today's rule: train with
    release weights (their codebook is unpublished) or a new codebook. ``init_sha256`` None (weights not
    loaded, e.g. a memory plan) compares ``init_name`` with the name the codebook recorded instead.
    """
    setting = _setting(sketch_embedding)
    if recovered_tables not in RECOVERED_TABLES_MODES:
        raise ValueError(f"trainable.recovered_tables={recovered_tables!r}: choose from {RECOVERED_TABLES_MODES}")
    if setting is True:
        return SketchTablesLayout(mode="train", reason="trainable.sketch_embedding=true")
    if setting is False:
        return SketchTablesLayout(mode="frozen", reason="trainable.sketch_embedding=false")
    if recovered is not None:
        return _recovered_layout(recovered, recovered_tables, init_sha256, init_name)
    if source == "release" or new_codebook:
        why = "a new sketch codebook" if new_codebook else "release weights (their codebook is unpublished)"
        return SketchTablesLayout(mode="train", reason=f"auto: {why}")
    return SketchTablesLayout(mode="frozen", reason="auto: no new sketch codebook")

