"""The style prompt of each sample: a prompt file from the manifest, else a clip of the song outside the segment."""

from __future__ import annotations

from typing import Any

import torch

from songbloom.data.audio import AudioError, load_audio, prompt_from_wav
from songbloom.data.manifest import SongRecord
from songbloom.data.preprocess.config import PreprocessConfig
from songbloom.data.preprocess.report import SampleError


def _prompt_window(seg: tuple[int, int], total: int, need: int) -> tuple[int, str]:
    """Start sample of the prompt clip: the middle of the longest stretch outside the segment, or the song start."""
    s, e = seg
    regions = [(0, s), (e, total)]
    lo, hi = max(regions, key=lambda r: r[1] - r[0])
    if hi - lo >= need:
        return lo + (hi - lo - need) // 2, "outside"
    return 0, "inside_fallback"


def read_file_prompt(rec: SongRecord, cfg: PreprocessConfig, sample_rate: int) -> torch.Tensor | None:
    """The prompt from the manifest's ``prompt_wav`` (the same for every segment), or None for the 'outside' rule."""
    rule = cfg.prompt_rule
    if rule == "auto":
        rule = "file" if rec.prompt_wav else "outside"
    if rule != "file":
        return None
    if not rec.prompt_wav:
        raise SampleError("prompt_rule=file but the manifest has no prompt_wav", "prompt_error", field="prompt_wav")
    try:
        p_audio = load_audio(rec.prompt_wav, sample_rate, 1, cfg.min_sample_rate)
    except AudioError as e:
        raise SampleError(f"prompt: {e}", e.kind, file=rec.prompt_wav, field="prompt_wav") from None
    return prompt_from_wav(p_audio.wav, sample_rate, cfg.prompt_seconds)


def segment_prompt(
    rec: SongRecord,
    file_prompt: torch.Tensor | None,
    wav: torch.Tensor,
    seg: tuple[int, int],
    sample_rate: int,
    prompt_seconds: float,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """The prompt audio (1, 1, T) for the segment ``seg`` (in samples) and where it came from."""
    if file_prompt is not None:
        return file_prompt, {"rule": "file", "source": rec.prompt_wav, "start_s": 0.0}
    need = int(round(prompt_seconds * sample_rate))
    p0, used = _prompt_window(seg, wav.shape[-1], need)
    prompt = prompt_from_wav(wav[:, p0 : p0 + need], sample_rate, prompt_seconds)
    return prompt, {"rule": used, "source": rec.audio_path, "start_s": round(p0 / sample_rate, 4)}
