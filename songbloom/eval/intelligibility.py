"""Lyric intelligibility: transcribe generated songs with an ASR model and score against the lyrics.

The ASR model is the user's choice (a local ``transformers`` model directory, or any callable
``(mono float32 numpy wav, sample_rate) -> str``); without one the metric reports that it was skipped
instead of failing a training run. Units: ``word`` (WER), ``char`` (CER, for zh/ja), ``phoneme`` (PER via
the release G2P in :mod:`songbloom.text`, so English, Mandarin and Japanese share one scale).
"""

from __future__ import annotations

import logging
import os
import re
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF

from songbloom.eval.edit_distance import ErrorCounts
from songbloom.eval.embedders import to_mono
from songbloom.eval.registry import register_metric

logger = logging.getLogger(__name__)

ASRCallable = Callable[[np.ndarray, int], str]
UNITS = ("word", "char", "phoneme")
_TAG = re.compile(r"\[[^\]]*\]")
_STRESS = re.compile(r"\d+$")


def build_asr_pipeline(model_dir: str | os.PathLike, *, device: str | int = "cpu", sample_rate: int = 16000,
                       **generate_kwargs) -> ASRCallable:
    """Wrap ``transformers.pipeline("automatic-speech-recognition", model=model_dir)`` as an ASR callable.

    Audio is downmixed and resampled to ``sample_rate`` (16 kHz for Whisper-style models) before decoding.
    """
    from transformers import pipeline

    path = Path(model_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"ASR model directory {path} does not exist; set eval.asr.model_dir to a local "
                                "transformers model folder (for example a downloaded Whisper) or leave it unset")
    asr = pipeline("automatic-speech-recognition", model=str(path), device=device)

    def transcribe(wav: np.ndarray, sr: int) -> str:
        x = torch.as_tensor(wav, dtype=torch.float32)
        if sr != sample_rate:
            x = AF.resample(x, int(sr), sample_rate)
        extra = {"generate_kwargs": dict(generate_kwargs)} if generate_kwargs else {}
        out = asr({"raw": x.numpy(), "sampling_rate": sample_rate}, **extra)
        return str(out["text"] if isinstance(out, dict) else out)

    return transcribe


def normalise_text(text: str) -> str:
    """Lower case, structure tags such as ``[verse]`` removed, punctuation turned into spaces."""
    text = _TAG.sub(" ", unicodedata.normalize("NFKC", text)).lower()
    chars = [" " if unicodedata.category(c).startswith(("P", "S")) else c for c in text]
    return " ".join("".join(chars).split())


def tokens(text: str, unit: str, *, language: str | None = None, strip_stress: bool = False) -> list[str]:
    """The token sequence of ``text`` for ``unit`` (``word``, ``char`` or ``phoneme``)."""
    if unit == "word":
        return normalise_text(text).split()
    if unit == "char":
        return [c for c in normalise_text(text) if not c.isspace()]
    if unit == "phoneme":
        from songbloom.text import process_lyrics

        clean = normalise_text(text)
        if not clean:
            return []
        phones = [p for p in process_lyrics(clean, language=language).split()
                  if not p.startswith("[") and p not in {",", "."}]
        return [_STRESS.sub("", p) for p in phones] if strip_stress else phones
    raise ValueError(f"unknown unit {unit!r}; choose one of {', '.join(UNITS)}")


@register_metric("lyric_error_rate")
class LyricErrorRateMetric:
    """Corpus error rate of ASR transcripts of generated songs against their lyrics.

    ``asr``: a callable, a local model directory (built with :func:`build_asr_pipeline`, ``generate_kwargs``
    such as ``{"max_new_tokens": 128}`` go to its decoder), or ``None`` (the metric is skipped:
    ``compute()`` returns ``{}`` and ``skipped_reason`` says why).
    """

    name = "lyric_error_rate"

    def __init__(self, asr: ASRCallable | str | os.PathLike | None = None, *, unit: str = "phoneme",
                 language: str | None = None, strip_stress: bool = False, device: str | int = "cpu",
                 generate_kwargs: dict | None = None):
        if unit not in UNITS:
            raise ValueError(f"unknown unit {unit!r}; choose one of {', '.join(UNITS)}")
        self.unit, self.language, self.strip_stress = unit, language, strip_stress
        self.skipped_reason: str | None = None
        if asr is None:
            self.asr = None
            self.skipped_reason = ("lyric intelligibility skipped: no ASR model configured "
                                   "(set eval.asr.model_dir to a local transformers ASR model, e.g. Whisper)")
            logger.info(self.skipped_reason)
        elif isinstance(asr, (str, os.PathLike)):
            self.asr = build_asr_pipeline(asr, device=device, **(generate_kwargs or {}))
        else:
            self.asr = asr
        self.reset()

    def reset(self) -> None:
        self.counts = ErrorCounts()
        self.transcripts: list[dict[str, str | int]] = []

    def update(self, generated: Sequence[torch.Tensor], lyrics: Sequence[str], *, sample_rate: int,
               languages: Sequence[str | None] | None = None) -> None:
        if self.asr is None:
            return
        if len(generated) != len(lyrics):
            raise ValueError(f"got {len(generated)} clips but {len(lyrics)} lyrics; give the lyrics of each clip")
        langs = list(languages) if languages is not None else [self.language] * len(lyrics)
        for wav, text, lang in zip(generated, lyrics, langs, strict=True):
            hyp_text = self.asr(to_mono(wav).cpu().numpy().astype(np.float32), sample_rate)
            ref = tokens(text, self.unit, language=lang, strip_stress=self.strip_stress)
            hyp = tokens(hyp_text, self.unit, language=lang, strip_stress=self.strip_stress)
            edits = self.counts.add(ref, hyp)
            self.transcripts.append({"lyrics": text, "transcript": hyp_text, "edits": edits,
                                     "reference_tokens": len(ref)})

    def compute(self) -> dict[str, float]:
        if self.asr is None:
            return {}
        key = {"word": "wer", "char": "cer", "phoneme": "per"}[self.unit]
        return {key: self.counts.rate, f"{key}_utterances": float(self.counts.utterances)}
