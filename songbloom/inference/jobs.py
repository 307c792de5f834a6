"""Generation jobs from a JSONL of ``{"idx", "lyrics", "prompt_wav"}`` lines (the official ``infer.py`` format).

Reading the file and encoding one item (lyric ids, prompt posterior) live here so ``infer.py`` and the
sketch-recovery corpus read a job file the same way: every bad line, missing prompt or unusable lyric becomes an
:class:`ItemProblem` naming file, line and what to fix; the other items still run.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from songbloom.text.lyric_policy import (
    DEFAULT_POLICY,
    encode_lyrics,
    item_language,
    jsonl_language,
    lyric_format_notes,
)

if TYPE_CHECKING:
    import torch

    from songbloom.inference.prompt import PromptMoments

logger = logging.getLogger(__name__)


class JobFileError(ValueError):
    """The job file itself cannot be read."""


@dataclass
class JobItem:
    """One valid JSONL entry."""

    line: int
    idx: str
    lyrics: str
    prompt_path: Path
    language: str | None = None  # the line's "language" (songbloom.text.lyric_policy: it comes first)


@dataclass
class ItemProblem:
    file: str
    line: int
    idx: str | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" + (f" (idx {self.idx})" if self.idx is not None else "")
        return f"{where}: {self.reason}"


@dataclass
class RunSummary:
    written: list[Path] = field(default_factory=list)
    problems: list[ItemProblem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def report_problem(summary: RunSummary, problem: ItemProblem) -> None:
    summary.problems.append(problem)
    logger.error("%s", problem)


def warn_item(summary: RunSummary, jsonl: Path, item: JobItem, note: str) -> None:
    summary.warnings.append(f"{jsonl}:{item.line} (idx {item.idx}): {note}")
    logger.warning("%s", summary.warnings[-1])


# ------------------------------------------------------------------------------------------------ the file
def resolve_prompt_path(raw: str, jsonl_path: Path) -> Path | None:
    """The official CLI opens the path as given (relative to the current directory); we also try the JSONL's folder."""
    p = Path(raw).expanduser()
    if p.is_absolute():
        return p if p.is_file() else None
    for base in (Path.cwd(), jsonl_path.resolve().parent):
        if (base / p).is_file():
            return (base / p).resolve()
    return None


def parse_jsonl_line(raw: bytes) -> object:
    """One JSONL line -> its JSON value (None when blank); ValueError saying what is wrong and what to do."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1}); save the file as UTF-8"
        ) from e
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON ({e.msg} at column {e.colno}); write one JSON object per line") from e


def _line_problem(obj: dict, seen: dict[str, int]) -> str | None:
    """Why a parsed line cannot be an item (None when its fields are fine; the prompt is checked after)."""
    idx = obj.get("idx")
    idx_s = None if idx is None else str(idx)
    missing = [k for k in ("idx", "lyrics", "prompt_wav") if obj.get(k) in (None, "")]
    if missing:
        return f"missing or empty field(s) {missing}; give every line idx, lyrics and prompt_wav"
    if not isinstance(idx, str | int) or not isinstance(obj["lyrics"], str) or not isinstance(obj["prompt_wav"], str):
        return "idx must be a string or integer, lyrics and prompt_wav strings"
    if any(c in idx_s for c in "/\\\0") or idx_s in (".", ".."):
        return "idx is used as a file name: no path separators"
    if idx_s in seen:
        return f"duplicate idx (first on line {seen[idx_s]}): outputs would collide; give each line its own idx"
    return None


def read_jsonl(path: Path) -> tuple[list[JobItem], list[ItemProblem]]:
    """Parse the job file; every bad line becomes a problem naming its line and what to fix.

    Raises:
        JobFileError: the file cannot be read at all.
    """
    items: list[JobItem] = []
    problems: list[ItemProblem] = []
    seen: dict[str, int] = {}
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise JobFileError(f"cannot read the job file {path}: {e}") from e
    for n, raw_bytes in enumerate(data.splitlines(), start=1):  # decoded line by line: one bad line stays one line
        try:
            obj = parse_jsonl_line(raw_bytes)
        except ValueError as e:
            problems.append(ItemProblem(str(path), n, None, str(e)))
            continue
        if obj is None:
            continue
        if not isinstance(obj, dict):
            got = type(obj).__name__
            reason = f"expected a JSON object, got {got}; write one {{idx, lyrics, prompt_wav}} object per line"
            problems.append(ItemProblem(str(path), n, None, reason))
            continue
        idx_s = None if obj.get("idx") is None else str(obj["idx"])
        reason = _line_problem(obj, seen)
        if reason is None:
            prompt = resolve_prompt_path(obj["prompt_wav"], path)
            if prompt is None:
                where = f"looked in {Path.cwd()} and {path.resolve().parent}"
                reason = f"prompt_wav {obj['prompt_wav']!r} not found ({where}); fix the path"
        if reason is None:
            language, reason = jsonl_language(obj)
        if reason is not None:
            problems.append(ItemProblem(str(path), n, idx_s, reason))
            continue
        seen[idx_s] = n
        items.append(JobItem(n, idx_s, obj["lyrics"], prompt, language))
    return items, problems


# ------------------------------------------------------------------------------------------------ one item
def encode_item_lyrics(
    item: JobItem, jsonl: Path, bundle, summary: RunSummary, *, policy: str = DEFAULT_POLICY,
    language: str | None = None,
) -> list[int] | None:
    """Lyric ids of one item under ``policy`` (lost text and format problems, as preprocessing checks them;
    ``language`` is the caller's default); None after reporting a failure in ``summary``."""
    try:
        lang, source = item_language(item.language, language, bundle.training_language, item.lyrics)
        logger.info("%s:%d (idx %s): lyrics read as %s (%s)", jsonl, item.line, item.idx, lang, source)
        ids, notes = encode_lyrics(item.lyrics, bundle.vocab, bundle.config.model.lyric_max_len, language=lang)
    except Exception as e:  # the text front end raises ValueError subclasses; anything else is reported too
        report_problem(summary, ItemProblem(str(jsonl), item.line, item.idx, f"lyrics: {e}"))
        return None
    notes = lyric_format_notes(item.lyrics) + notes
    if policy == "drop":
        for note in notes:
            logger.info("%s:%d (idx %s): lyrics (--lyrics-policy drop): %s", jsonl, item.line, item.idx, note)
        return ids
    if policy == "error" and notes:
        reason = "lyrics: " + "; ".join(notes) + " (fix the lyrics, or pass --lyrics-policy warn to generate anyway)"
        report_problem(summary, ItemProblem(str(jsonl), item.line, item.idx, reason))
        return None
    for note in notes:
        warn_item(summary, jsonl, item, note)
    return ids


def encode_item_prompt(
    item: JobItem, jsonl: Path, bundle, sample_rate: int, dtype: torch.dtype, summary: RunSummary
) -> tuple[PromptMoments | None] | None:
    """``(prompt moments or None,)`` of one item (None inside: too short, generated without a style prompt), or
    None after reporting why the prompt cannot be used."""
    from songbloom.inference.prompt import PromptAudioError, load_prompt_audio, low_sample_rate_note, prompt_moments

    note = low_sample_rate_note(item.prompt_path, sample_rate)
    if note:
        warn_item(summary, jsonl, item, note)
    try:
        wav = load_prompt_audio(item.prompt_path, sample_rate, bundle.config.prompt_len)
        moments = prompt_moments(bundle.vae, wav, dtype)
    except PromptAudioError as e:
        report_problem(summary, ItemProblem(str(jsonl), item.line, item.idx, f"prompt: {e}"))
        return None
    if moments is None:
        msg = f"prompt {item.prompt_path} is shorter than the VAE minimum; generating without a style prompt"
        warn_item(summary, jsonl, item, msg)
    return (moments,)


def encode_item(
    item: JobItem, jsonl: Path, bundle, sample_rate: int, dtype: torch.dtype, summary: RunSummary, *,
    policy: str = DEFAULT_POLICY, language: str | None = None,
) -> tuple[list[int], PromptMoments | None] | None:
    """(lyric ids, prompt moments or None) of one item, or None after reporting why it cannot run."""
    ids = encode_item_lyrics(item, jsonl, bundle, summary, policy=policy, language=language)
    if ids is None:
        return None
    prompt = encode_item_prompt(item, jsonl, bundle, sample_rate, dtype, summary)
    if prompt is None:
        return None
    return ids, prompt[0]
