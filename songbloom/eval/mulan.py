"""MuQ-MuLan joint text/audio embeddings (the paper's MuLan cycle consistency), real or tiny random.

``MuQMuLan`` builds its towers by *name*: the audio tower loads ``MuQ.from_pretrained(audio_model.name)``
when the name contains ``muq``, the text tower ``XLMRobertaModel`` and ``AutoTokenizer`` from
``text_model.name`` when it contains ``xlm-roberta``. A local directory works for both as long as its path
contains those words, which is how :func:`build_tiny_mulan` gets a fully offline model for tests.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torchaudio.functional as AF
from torch import nn

from songbloom.checkpoints.model_folders import check_mulan_folder, remote_code_off
from songbloom.eval.embedders import to_mono

logger = logging.getLogger(__name__)

DEFAULT_MULAN_MODEL_ID = "OpenMuQ/MuQ-MuLan-large"
MULAN_SAMPLE_RATE = 24000
_TINY_WORDS = (
    "a an the and with of in pop rock jazz folk piano guitar drums bass synth strings female male vocal "
    "voice sad happy slow fast calm energetic dark bright song music chinese english japanese"
).split()


def _fork_rng():
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    return torch.random.fork_rng(devices=devices)


def _save_tiny_xlm_roberta(out_dir: Path, seed: int) -> None:
    """A 1-layer random XLM-R and a word-level tokenizer saved with ``save_pretrained`` (no download)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaModel

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for word in _TINY_WORDS:
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", model_max_length=62)
    fast.save_pretrained(str(out_dir))
    cfg = XLMRobertaConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=64, pad_token_id=1)
    torch.manual_seed(seed)
    XLMRobertaModel(cfg).save_pretrained(str(out_dir))


def build_tiny_mulan(out_dir: str | os.PathLike, seed: int = 0, *, clip_secs: int = 1) -> nn.Module:
    """A tiny random ``MuQMuLan`` (tiny MuQ audio tower, tiny XLM-R text tower) saved under ``out_dir``.

    ``out_dir/mulan`` can be reloaded with :func:`load_mulan`; its config names the two tower directories
    (``out_dir/tiny-muq``, ``out_dir/tiny-xlm-roberta``), which must stay where they are.
    """
    from muq import MuQMuLan

    from songbloom.sketch import build_tiny_muq

    out = Path(out_dir).resolve()
    muq_dir, xlmr_dir = out / "tiny-muq", out / "tiny-xlm-roberta"
    with _fork_rng():
        build_tiny_muq(seed, muq_dir)
        _save_tiny_xlm_roberta(xlmr_dir, seed)
        config = {
            "mulan": {"sr": MULAN_SAMPLE_RATE, "clip_secs": int(clip_secs), "dim_latent": 16,
                      "decoupled_contrastive_learning": True, "hierarchical_contrastive_loss": False,
                      "hierarchical_contrastive_loss_layers": None, "sigmoid_contrastive_loss": False,
                      "rank_contrast": True},
            "audio_model": {"name": str(muq_dir), "model_dim": 64, "use_layer_idx": -1},
            "text_model": {"name": str(xlmr_dir), "model_dim": 32, "use_layer_idx": -1},
            "audio_transformer": {"dim": 32, "tf_depth": 1, "heads": 2, "dim_head": 16, "attn_dropout": 0.0,
                                  "ff_dropout": 0.0, "ff_mult": 2},
            "text_transformer": {"dim": 32, "tf_depth": 1, "max_seq_len": 64, "heads": 2, "dim_head": 16,
                                 "attn_dropout": 0.0, "ff_dropout": 0.0, "ff_mult": 2},
        }
        torch.manual_seed(seed)
        model = MuQMuLan(config).eval()
        model.save_pretrained(str(out / "mulan"))
    logger.info("saved tiny random MuQ-MuLan (seed %d) to %s", seed, out / "mulan")
    return model


def load_mulan(model_id_or_dir: str | os.PathLike = DEFAULT_MULAN_MODEL_ID, *,
               device: str | torch.device = "cpu") -> nn.Module:
    """``MuQMuLan.from_pretrained`` in eval mode; a hub id downloads (MuQ-MuLan weights are CC-BY-NC-4.0)."""
    from muq import MuQMuLan

    check_mulan_folder(model_id_or_dir)  # towers that would run remote code or unpickle are refused up front
    with _fork_rng(), remote_code_off():  # the MuQ audio tower reseeds the global RNG in its constructor
        model = MuQMuLan.from_pretrained(str(model_id_or_dir))
    return model.to(device).eval()


class MuLanScorer:
    """L2-normalised MuLan latents for audio and text, and their dot-product similarities."""

    def __init__(self, mulan: nn.Module | str | os.PathLike | None = None, *, device: str | torch.device = "cpu"):
        if mulan is None or isinstance(mulan, (str, os.PathLike)):
            mulan = load_mulan(mulan or DEFAULT_MULAN_MODEL_ID, device=device)
        self.mulan = mulan.eval()
        self.sample_rate = int(getattr(mulan, "sr", MULAN_SAMPLE_RATE))

    @torch.no_grad()
    def audio_latents(self, wavs: Sequence[torch.Tensor], sample_rate: int) -> torch.Tensor:
        """``[N, dim_latent]`` unit vectors; each clip is downmixed and resampled to MuLan's rate (24 kHz).

        MuQ-MuLan averages the l2-normalised latents of its fixed-length windows, which leaves songs longer
        than one window with a norm below 1; re-normalising makes every similarity a true cosine.
        """
        latents = []
        for wav in wavs:
            x = to_mono(wav)
            if sample_rate != self.sample_rate:
                x = AF.resample(x, int(sample_rate), self.sample_rate)
            latents.append(self.mulan(wavs=x[None].to(self.mulan.device))[0].float().cpu())
        return torch.nn.functional.normalize(torch.stack(latents), dim=-1)

    @torch.no_grad()
    def text_latents(self, texts: Sequence[str]) -> torch.Tensor:
        if not texts:
            raise ValueError("text_latents needs at least one text")
        return torch.nn.functional.normalize(self.mulan(texts=list(texts)).float().cpu(), dim=-1)
