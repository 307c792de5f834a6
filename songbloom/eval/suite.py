"""Evaluate folders of generated audio (one per model) against a reference folder and per-song prompts.

Songs are matched by file stem: generating with the same prompt and seed under the same name for every
model is what makes the comparison fair. Each metric runs only when its inputs exist (a reference folder,
a MuLan model, texts, an ASR model, lyrics); what did not run is listed with the reason.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from songbloom.eval.audio_io import AudioFolder
from songbloom.eval.audio_metrics import (
    AudioSimilarityMetric,
    FADMetric,
    MuLanAudioAudioMetric,
    MuLanTextAudioMetric,
)
from songbloom.eval.embedders import AudioEmbedder
from songbloom.eval.frechet import DEFAULT_EPS, GaussianStats
from songbloom.eval.intelligibility import LyricErrorRateMetric
from songbloom.eval.mulan import MuLanScorer

logger = logging.getLogger(__name__)


@dataclass
class Prompt:
    """What a song was generated from: lyrics (for the error rate), a text description (for MuLan)."""

    name: str
    lyrics: str | None = None
    text: str | None = None
    language: str | None = None


def load_prompts(path: str | Path) -> dict[str, Prompt]:
    """JSON lines ``{"name": ..., "lyrics": ..., "text": ..., "language": ...}``; only ``name`` is required."""
    prompts: dict[str, Prompt] = {}
    for lineno, raw in enumerate(Path(path).read_bytes().splitlines(), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(
                f"{path}:{lineno}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1}); "
                "save the file as UTF-8"
            ) from None
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg}); one object per line") from None
        if not isinstance(row, dict) or not isinstance(row.get("name"), str):
            raise ValueError(f"{path}:{lineno}: each line needs a string field 'name' (the audio file stem)")
        unknown = set(row) - {"name", "lyrics", "text", "language"}
        if unknown:
            allowed = ", ".join(Prompt.__annotations__)
            raise ValueError(f"{path}:{lineno}: unknown fields {sorted(unknown)}; allowed: {allowed}")
        if row["name"] in prompts:
            raise ValueError(f"{path}:{lineno}: duplicate name {row['name']!r}")
        prompts[row["name"]] = Prompt(**row)
    return prompts


@dataclass
class CandidateResult:
    metrics: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # metric -> why it did not run
    clips: int = 0
    paired_with_reference: int = 0
    transcripts: list[dict[str, Any]] = field(default_factory=list)
    caveats: dict[str, str] = field(default_factory=dict)  # metric -> why its value is weak (small sets)

    def to_dict(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "skipped": self.skipped, "clips": self.clips,
                "paired_with_reference": self.paired_with_reference, "transcripts": self.transcripts,
                "caveats": self.caveats}


# Set metrics (a Frechet distance between two sets of clips) are biased and noisy on small sets: below this many
# clips on either side the report flags the value (FAD papers use thousands of clips).
SET_METRIC_MIN_CLIPS = 50


def small_set_caveat(generated: int, reference: int, minimum: int = SET_METRIC_MIN_CLIPS) -> str | None:
    """The report's note on a set metric computed from few clips, or None when both sets are large enough."""
    if min(generated, reference) >= minimum:
        return None
    return (f"small n: {generated} generated and {reference} reference clips (< {minimum}); a Frechet distance "
            "from so few clips is dominated by estimation bias and is not comparable across set sizes")


_SEED_SUFFIX = re.compile(r"_s\d+$")


def match_key(stem: str, table: Mapping[str, Any]) -> str | None:
    """``stem`` itself when ``table`` has it, else the stem without a ``_s<seed>`` suffix, else ``None``.

    Songs generated with several seeds are named ``<prompt>_s<seed>``; they all pair with the prompt's entry.
    """
    if stem in table:
        return stem
    base = _SEED_SUFFIX.sub("", stem)
    return base if base in table else None


def _embed(embedder: AudioEmbedder, folder: AudioFolder) -> dict[str, torch.Tensor]:
    return {name: embedder.embed([wav], sr)[0] for name, (wav, sr) in sorted(folder.clips.items())}


def evaluate_folders(candidates: Mapping[str, AudioFolder], reference: AudioFolder | None = None, *,
                     prompts: Mapping[str, Prompt] | None = None, embedder: AudioEmbedder | None = None,
                     mulan: MuLanScorer | None = None, asr=None, unit: str = "phoneme",
                     fad_eps: float = DEFAULT_EPS) -> dict[str, CandidateResult]:
    """Metrics for each candidate folder; see the module docstring for matching and skipping rules."""
    prompts = dict(prompts or {})
    ref_feats = _embed(embedder, reference) if (embedder is not None and reference is not None) else {}
    ref_stats = None
    if ref_feats:
        ref_stats = GaussianStats.empty(embedder.dim)
        for f in ref_feats.values():
            if f.shape[0]:
                ref_stats.add(f)
    results: dict[str, CandidateResult] = {}
    for cand_name, folder in candidates.items():
        res = CandidateResult(clips=len(folder.clips))
        ref_of = {n: match_key(n, reference.clips) for n in folder.names} if reference is not None else {}
        paired = [n for n in folder.names if ref_of.get(n)]
        res.paired_with_reference = len(paired)
        if embedder is None:
            res.skipped["fad"] = res.skipped["audio_similarity"] = "no embedder configured"
        elif reference is None:
            res.skipped["fad"] = res.skipped["audio_similarity"] = "no reference folder given"
        else:
            feats = _embed(embedder, folder)
            fad = FADMetric(embedder, reference_stats=ref_stats, eps=fad_eps)
            for f in feats.values():
                if f.shape[0]:
                    fad.update_embeddings(generated=f)
            res.metrics.update(fad.compute())
            caveat = small_set_caveat(sum(1 for f in feats.values() if f.shape[0]), len(ref_feats))
            if caveat:
                res.caveats["fad"] = caveat
            if paired:
                sim = AudioSimilarityMetric(embedder)
                sim.update_embeddings([feats[n] for n in paired], [ref_feats[ref_of[n]] for n in paired])
                res.metrics.update(sim.compute())
            else:
                res.skipped["audio_similarity"] = "no generated file has the stem of a reference file"
        _mulan_metrics(res, folder, reference, {n: ref_of[n] for n in paired}, prompts, mulan)
        _lyric_metrics(res, folder, prompts, asr, unit)
        results[cand_name] = res
    return results


def _mulan_metrics(res: CandidateResult, folder: AudioFolder, reference: AudioFolder | None,
                   paired: Mapping[str, str], prompts: Mapping[str, Prompt], mulan: MuLanScorer | None) -> None:
    if mulan is None:
        res.skipped["mulan_text_audio"] = res.skipped["mulan_audio_audio"] = "no MuQ-MuLan model configured"
        return
    prompt_of = {n: match_key(n, prompts) for n in folder.names}
    with_text = [n for n in folder.names if prompt_of[n] and prompts[prompt_of[n]].text]
    if with_text:
        m = MuLanTextAudioMetric(mulan)
        for n in with_text:
            wav, sr = folder.clips[n]
            m.update([wav], [prompts[prompt_of[n]].text], sample_rate=sr)
        res.metrics.update(m.compute())
    else:
        res.skipped["mulan_text_audio"] = "no prompt with a 'text' description matches a generated file"
    if paired and reference is not None:
        m = MuLanAudioAudioMetric(mulan)
        for n, r in paired.items():
            (wav, sr), (ref, ref_sr) = folder.clips[n], reference.clips[r]
            m.update([wav], [_resample_like(ref, ref_sr, sr)], sample_rate=sr)
        res.metrics.update(m.compute())
    else:
        res.skipped["mulan_audio_audio"] = "no reference file pairs with a generated file"


def _lyric_metrics(res: CandidateResult, folder: AudioFolder, prompts: Mapping[str, Prompt], asr, unit: str) -> None:
    if asr is None:
        res.skipped["lyric_error_rate"] = "no ASR model configured (--asr <local transformers model dir>)"
        return
    prompt_of = {n: match_key(n, prompts) for n in folder.names}
    with_lyrics = [n for n in folder.names if prompt_of[n] and prompts[prompt_of[n]].lyrics]
    if not with_lyrics:
        res.skipped["lyric_error_rate"] = "no prompt with 'lyrics' matches a generated file"
        return
    metric = asr if isinstance(asr, LyricErrorRateMetric) else LyricErrorRateMetric(asr, unit=unit)
    metric.reset()
    for n in with_lyrics:
        wav, sr = folder.clips[n]
        p = prompts[prompt_of[n]]
        metric.update([wav], [p.lyrics], sample_rate=sr, languages=[p.language])
    res.metrics.update(metric.compute())
    res.transcripts = [{"name": n, **t} for n, t in zip(with_lyrics, metric.transcripts, strict=True)]


def _resample_like(wav: torch.Tensor, sr: int, target_sr: int) -> torch.Tensor:
    if sr == target_sr:
        return wav
    import torchaudio.functional as AF

    return AF.resample(wav, sr, target_sr)
