"""What made the shards (VAE, codebook, lyric rules, settings), hashed so stale encodings are never mixed in."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from songbloom.data.encoders import Encoders
from songbloom.data.preprocess.config import PreprocessConfig
from songbloom.data.preprocess.lock import folder_guard
from songbloom.data.shards import atomic_write_json
from songbloom.licences import merge_licences, sketch_codebook_licences

PROVENANCE_NAME = "provenance.json"


class ProvenanceMismatch(RuntimeError):
    """The output folder holds shards made with other encoders or settings."""


def effective_num_pitch(cfg: PreprocessConfig, enc: Encoders) -> int:
    if enc.sketch is not None:
        if cfg.num_pitch is not None and enc.sketch.num_codes > cfg.num_pitch:
            raise ValueError(
                f"codebook has {enc.sketch.num_codes} codes but num_pitch={cfg.num_pitch}: sketch ids would not fit "
                "the model's embedding; use a model with num_pitch >= the codebook size"
            )
        return int(cfg.num_pitch or enc.sketch.num_codes)
    return int(cfg.num_pitch or 16384)


def provenance(cfg: PreprocessConfig, enc: Encoders) -> dict[str, Any]:
    num_pitch = effective_num_pitch(cfg, enc)
    prov = {
        "vae": {
            "fingerprint": enc.latent.fingerprint,
            "sample_rate": int(enc.latent.sample_rate),
            "downsampling_ratio": int(enc.latent.downsampling_ratio),
        },
        "sketch": None
        if enc.sketch is None
        else {"codebook_hash": enc.sketch.codebook_hash, "num_codes": int(enc.sketch.num_codes)},
        "num_pitch": num_pitch,
        "lyrics": {"fingerprint": enc.lyrics.fingerprint, "vocab_size": len(enc.lyrics.vocabulary)},
        "config": cfg.provenance_dict(),
    }
    prov["hash"] = hashlib.sha256(json.dumps(prov, sort_keys=True).encode()).hexdigest()
    # Outside the hash: the encoders' licences (MuQ weights behind the codebook) describe, not define, the shards.
    metadata = getattr(getattr(enc.sketch, "tokenizer", None), "metadata", None)
    prov["licences"] = merge_licences(
        sketch_codebook_licences(metadata if isinstance(metadata, dict) else None),
        getattr(enc.latent, "licences", None),  # VAE weights loaded from files (VAELatentEncoder.from_files)
    )
    return prov


def claim_out_dir(out_dir: Path, prov: dict[str, Any]) -> None:
    """Write ``provenance.json`` into a new output folder; refuse one whose shards were made differently."""
    prov_path = out_dir / PROVENANCE_NAME
    with folder_guard(out_dir):  # array tasks starting together: one writes, the others compare
        if not prov_path.exists():
            atomic_write_json(prov_path, prov)
            return
        old = json.loads(prov_path.read_text(encoding="utf-8"))
    if old.get("hash") != prov["hash"]:
        diff = sorted(k for k in prov if k != "hash" and old.get(k) != prov[k])
        raise ProvenanceMismatch(
            f"{out_dir} holds shards made with different {diff}; they would be mixed with stale encodings. "
            "Write to a new folder or pass --overwrite."
        )
