"""Loading MuQ (real or tiny random) and fingerprinting it, so a codebook can name the exact features it expects."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import torch
from torch import nn

from songbloom.checkpoints.model_folders import check_muq_folder
from songbloom.utils.provenance import update_with_sampled_tensors

logger = logging.getLogger(__name__)

DEFAULT_MUQ_MODEL_ID = "OpenMuQ/MuQ-large-msd-iter"
MUQ_WEIGHTS_LICENCE = "CC-BY-NC-4.0"
TINY_MUQ_ID_PREFIX = "songbloom-tiny-random-muq"

# Mel statistics shipped in MuQ-large-msd-iter's config; MuQ normalises its input mel with them.
_MUQ_MEL_STAT = {"melspec_2048_cnt": 1, "melspec_2048_mean": 6.768444971712967, "melspec_2048_std": 18.417922652295623}


def _tiny_w2v2_config(encoder_dim: int, encoder_depth: int) -> dict:
    """A wav2vec2-conformer-rope config dict shrunk to test size (MuQ overrides width and depth itself)."""
    from transformers import Wav2Vec2ConformerConfig

    cfg = Wav2Vec2ConformerConfig(
        hidden_size=encoder_dim,
        num_hidden_layers=encoder_depth,
        num_attention_heads=4,
        intermediate_size=128,
        position_embeddings_type="rotary",
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
    ).to_dict()
    # Round-trip through JSON: exactly what MuQ.from_pretrained will hand back from config.json.
    return json.loads(json.dumps(cfg, default=str))


def build_tiny_muq(seed: int = 0, out_dir: str | os.PathLike | None = None, *, encoder_dim: int = 64,
                   encoder_depth: int = 2, conv_dim: int = 16) -> nn.Module:
    """A MuQ with random weights (deterministic from ``seed``) for tests and the CPU demo; no download.

    When ``out_dir`` is given the model is also saved there with ``save_pretrained`` so that
    ``load_muq(out_dir)`` (and hence a codebook artifact that names the directory) can rebuild it offline.
    """
    from muq import MuQ, MuQConfig

    cfg = MuQConfig(encoder_dim=encoder_dim, encoder_depth=encoder_depth, conv_dim=conv_dim, stat=dict(_MUQ_MEL_STAT),
                    w2v2_config=_tiny_w2v2_config(encoder_dim, encoder_depth))
    with _preserve_global_rng():
        model = MuQ(cfg).eval()
        # MuQ's constructor calls torch.manual_seed(142) (its random-projection quantiser), so the weights it
        # draws ignore any seed set before; re-draw every layer from our own seed instead.
        torch.manual_seed(seed)
        for module in model.modules():
            if hasattr(module, "reset_parameters") and callable(module.reset_parameters):
                module.reset_parameters()
    if out_dir is not None:
        save_muq(model, out_dir)
        logger.info("saved tiny random MuQ (seed %d) to %s", seed, out_dir)
    return model


def save_muq(model: nn.Module, out_dir: str | os.PathLike) -> Path:
    """Save ``model`` with ``save_pretrained`` so that ``load_muq(out_dir)`` rebuilds it offline."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    return out


def load_muq(model_id_or_dir: str | os.PathLike, *, device: str | torch.device = "cpu") -> nn.Module:
    """``MuQ.from_pretrained`` in eval mode (BatchNorm inside MuQ makes train mode wrong for features).

    A local directory is read offline; a hub id such as ``OpenMuQ/MuQ-large-msd-iter`` downloads weights
    licensed CC-BY-NC-4.0.
    """
    from muq import MuQ

    check_muq_folder(model_id_or_dir)  # no remote code, no pickles: refused with the reason before MuQ reads it
    with _preserve_global_rng():  # MuQ's constructor reseeds the global RNG (torch.manual_seed(142))
        model = MuQ.from_pretrained(str(model_id_or_dir))
    return model.to(device).eval()


def _preserve_global_rng():
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    return torch.random.fork_rng(devices=devices)


def muq_layer_count(muq: nn.Module) -> int:
    """Number of hidden states MuQ returns: encoder input plus one per conformer layer."""
    return int(muq.config.encoder_depth) + 1


def muq_feature_dim(muq: nn.Module) -> int:
    return int(muq.config.encoder_dim)


def muq_fingerprint(muq: nn.Module) -> str:
    """A cheap identity of MuQ's config and weights (shapes plus head/tail values of every tensor).

    Hashing all 300M parameters would cost seconds per tokenizer load; sampled values still tell apart
    different checkpoints and different random seeds, which is what a codebook needs to refuse.
    """
    digest = hashlib.sha256()
    cfg = getattr(muq, "config", None)
    cfg_dict = dict(cfg.__dict__) if cfg is not None and hasattr(cfg, "__dict__") else {}
    digest.update(json.dumps(cfg_dict, sort_keys=True, default=str).encode())
    update_with_sampled_tensors(digest, muq.state_dict())
    return digest.hexdigest()[:16]
