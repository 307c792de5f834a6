"""jaCappella bootstrap: fetch the gated corpus (or read a local copy), drop scat-only songs, time the sections.

Download: ``huggingface_hub.snapshot_download`` of the dataset ``jaCappella/jaCappella`` with only the files
the conversion reads (allow-patterns), into a local folder. Finished files are skipped and interrupted ones
resumed, so a second call continues where the first stopped. The corpus is gated: accept its terms on the
dataset page while logged in, then pass a token (``--hf-token``, ``HF_TOKEN``, or ``hf auth login``).

Scat rule (stated, reported): a syllable is *lyric* when it contains kana or kanji; anything else (romaji
"du", "ba", "LABADADA") is *scat*. A phrase is a lyric phrase when at least half of its syllables are lyric.
A song is **scat-only** and skipped when fewer than ``min_lyric_fraction`` (default 0.3) of its syllables are
lyric or it has no lyric phrase. Scat phrases of kept songs leave the lyrics (their time becomes part of a
gap, which may turn into an ``[inst]`` section). Every song's counts and decision go into the report.

Timestamps: lyric phrases are timed from the score (:mod:`songbloom.data.musicxml_timing`), assuming score
time 0 is audio time 0 (``score_offset`` shifts it). Consecutive phrases closer than ``gap_seconds`` form one
``[verse]`` section (the score says nothing about verse or chorus, so no guess is made); longer silences
become ``[intro]``/``[inst]``/``[outro]`` sections, and the last section ends with the audio.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import soundfile as sf

from songbloom.data.manifest import Problem
from songbloom.data.musicxml_timing import Phrase, timed_phrases
from songbloom.utils.atomic import atomic_write_json

logger = logging.getLogger(__name__)

REPO_ID = "jaCappella/jaCappella"
LICENCE = "jaCappella-research"
AUDIO_TYPES = ("lead_vocal", "mixture", "mixture_stereo")
SCORE_PATTERNS = {"svs": "*_SVS.musicxml", "romaji": "*_romaji.musicxml", "default": "*.musicxml"}
_JAPANESE = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]")
MIN_NON_VOCAL_SECONDS = 0.5


class DownloadError(RuntimeError):
    """The corpus could not be fetched; the message says why and what to do."""


# ------------------------------------------------------------------------------------------------ download
def allow_patterns(audio_type: str = "lead_vocal", score_type: str = "svs", subsets: Sequence[str] = ()) -> list[str]:
    """What to fetch: the chosen audio, the chosen scores, each song's meta.csv and the licence/readme files."""
    if audio_type not in AUDIO_TYPES:
        raise ValueError(f"audio_type {audio_type!r}: choose from {AUDIO_TYPES}")
    score = SCORE_PATTERNS[score_type]
    per_song = [f"{audio_type}.wav", score.lstrip("*"), "meta.csv"]
    # fnmatch's * also crosses "/", so the depth of the song folders in the repository does not matter
    songs = [f"*{s}/*{name}" for s in subsets for name in per_song] if subsets else [f"*{n}" for n in per_song]
    return songs + ["README*", "LICENSE*", "*.md"]


def download_jacappella(
    local_dir: str | Path,
    *,
    token: str | None = None,
    audio_type: str = "lead_vocal",
    score_type: str = "svs",
    subsets: Sequence[str] = (),
    revision: str | None = None,
    downloader: Callable[..., str] | None = None,
) -> Path:
    """Fetch (or finish fetching) the files the converter needs into ``local_dir``; returns that folder."""
    if downloader is None:
        from huggingface_hub import snapshot_download as downloader
    patterns = allow_patterns(audio_type, score_type, subsets)
    logger.info("fetching %s (%s) into %s", REPO_ID, ", ".join(patterns), local_dir)
    try:
        path = downloader(
            repo_id=REPO_ID,
            repo_type="dataset",
            local_dir=str(local_dir),
            allow_patterns=patterns,
            token=token,
            revision=revision,
        )
    except Exception as e:  # auth, gating, network, disk: one clear message, the cause attached
        name = type(e).__name__
        if "Gated" in name or "401" in str(e) or "403" in str(e):
            hint = (
                f"the dataset is gated: open https://huggingface.co/datasets/{REPO_ID}, log in, accept its terms, "
                "then pass your token (--hf-token or HF_TOKEN, or run `hf auth login`)"
            )
        elif "RepositoryNotFound" in name:
            hint = f"the repository {REPO_ID} was not found with this token (check the token and the terms)"
        else:
            hint = "check the network and the disk; run the same command again to resume (finished files are kept)"
        raise DownloadError(f"could not download {REPO_ID} into {local_dir}: {name}: {e}\n{hint}") from e
    return Path(path)


# ------------------------------------------------------------------------------------------------ scat filter
def is_lyric_syllable(text: str) -> bool:
    return bool(_JAPANESE.search(text))


@dataclass
class SongDecision:
    idx: str
    score: str
    syllables: int
    lyric_syllables: int
    lyric_phrases: int
    scat_phrases: int
    kept: bool
    reason: str = ""

    @property
    def lyric_fraction(self) -> float:
        return self.lyric_syllables / self.syllables if self.syllables else 0.0


@dataclass
class JaCappellaReport:
    rule: str
    songs: list[SongDecision] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        kept = [s for s in self.songs if s.kept]
        return {
            "rule": self.rule,
            "counts": {
                "songs_seen": len(self.songs) + sum(1 for p in self.problems if p.kind != "scat_only"),
                "kept": len(kept),
                "scat_only": sum(1 for s in self.songs if not s.kept),
                "other_problems": sum(1 for p in self.problems if p.kind != "scat_only"),
            },
            "songs": [{**asdict(s), "lyric_fraction": round(s.lyric_fraction, 3)} for s in self.songs],
            "problems": [p.to_json() for p in self.problems],
        }


def scat_rule_text(min_lyric_fraction: float) -> str:
    return (
        "syllable = lyric if it contains kana or kanji, else scat; phrase = lyric if >= 50% of its syllables are "
        f"lyric; song skipped as scat-only if < {min_lyric_fraction:.0%} of its syllables are lyric or it has no "
        "lyric phrase"
    )


def split_lyric_phrases(phrases: list[Phrase]) -> tuple[list[Phrase], list[Phrase]]:
    lyric, scat = [], []
    for p in phrases:
        n = sum(is_lyric_syllable(s) for s in p.syllables)
        (lyric if n * 2 >= len(p.syllables) and n > 0 else scat).append(p)
    return lyric, scat


# ------------------------------------------------------------------------------------------------ sections
def phrase_text(p: Phrase) -> str:
    """A lyric phrase as manifest text: its lyric syllables only, Japanese punctuation removed."""
    return "".join(s for s in p.syllables if is_lyric_syllable(s)).replace("。", "").replace("、", "").strip()


def phrases_to_sections(phrases: list[Phrase], duration: float, gap_seconds: float = 4.0) -> list[dict[str, Any]]:
    """Timed lyric phrases -> manifest sections covering [0, duration] (see the module docstring)."""
    phrases = [p for p in phrases if p.start < duration and phrase_text(p)]
    groups: list[list[Phrase]] = []
    for p in phrases:
        if groups and p.start - groups[-1][-1].end < gap_seconds:
            groups[-1].append(p)
        else:
            groups.append([p])
    sections: list[dict[str, Any]] = []
    cursor = 0.0
    for i, g in enumerate(groups):
        start, end = g[0].start, min(g[-1].end, duration)
        if start - cursor >= MIN_NON_VOCAL_SECONDS:
            sections.append({"tag": "intro" if i == 0 else "inst", "start": cursor, "end": start})
        else:
            start = cursor  # a sliver of silence joins the vocal section
        text = " . ".join(phrase_text(p) for p in g) + " ."
        sections.append({"tag": "verse", "start": start, "end": end, "text": text})
        cursor = end
    if sections and duration - cursor >= MIN_NON_VOCAL_SECONDS:
        sections.append({"tag": "outro", "start": cursor, "end": duration})
    elif sections:
        sections[-1]["end"] = duration
    for s in sections:
        s["start"], s["end"] = round(s["start"], 3), round(s["end"], 3)
    return sections


# ------------------------------------------------------------------------------------------------ conversion
def jacappella_rows(
    root: str | Path,
    audio_type: str = "lead_vocal",
    score_type: str = "svs",
    *,
    min_lyric_fraction: float = 0.3,
    gap_seconds: float = 4.0,
    score_offset: float = 0.0,
    timestamps: bool = True,
) -> tuple[list[dict[str, Any]], JaCappellaReport]:
    """Manifest rows of every usable song under ``root`` and the report (kept, scat-only, other problems)."""
    root = Path(root)
    report = JaCappellaReport(rule=scat_rule_text(min_lyric_fraction))
    rows: list[dict[str, Any]] = []
    pattern = SCORE_PATTERNS[score_type]
    for song in sorted(p for p in root.rglob("*") if p.is_dir() and (p / f"{audio_type}.wav").exists()):
        scores = sorted(
            s for s in song.glob(pattern) if score_type != "default" or not re.search(r"_(SVS|romaji)\.", s.name)
        )
        if not scores:
            report.problems.append(Problem(str(song), f"no {pattern} score", kind="missing_file"))
            continue
        idx = "jacappella__" + str(song.relative_to(root)).replace("/", "__")
        audio = song / f"{audio_type}.wav"
        try:
            timed = timed_phrases(scores[0])
            duration = sf.info(str(audio)).duration
        except (ET.ParseError, ValueError, RuntimeError, OSError) as e:
            report.problems.append(Problem(str(scores[0]), f"unreadable score or audio: {e}", kind="invalid_lyrics"))
            continue
        lyric, scat = split_lyric_phrases(timed.phrases)
        n_syl = sum(len(p.syllables) for p in timed.phrases)
        n_lyric = sum(is_lyric_syllable(s) for p in timed.phrases for s in p.syllables)
        decision = SongDecision(idx, str(scores[0]), n_syl, n_lyric, len(lyric), len(scat), kept=True)
        if not lyric or decision.lyric_fraction < min_lyric_fraction:
            decision.kept = False
            decision.reason = f"scat-only: {n_lyric}/{n_syl} syllables are lyric ({decision.lyric_fraction:.0%})"
            report.songs.append(decision)
            report.problems.append(Problem(str(scores[0]), decision.reason, idx=idx, kind="scat_only"))
            continue
        report.songs.append(decision)
        row: dict[str, Any] = {
            "idx": idx,
            "song_id": idx,
            "audio_path": str(audio.resolve()),
            "lyrics": "[verse] " + ". ".join(phrase_text(p) for p in lyric) + ".",
            "language": "ja",
            "license": LICENCE,
        }
        if timestamps:
            for p in lyric:
                p.start, p.end = p.start + score_offset, p.end + score_offset
            if timed.end + score_offset > duration + 1.0:
                logger.warning(
                    "%s: the score lasts %.1f s but %s only %.1f s; sections are cut at the audio's end",
                    scores[0],
                    timed.end + score_offset,
                    audio.name,
                    duration,
                )
            sections = phrases_to_sections(lyric, duration, gap_seconds)
            if sections:
                row["sections"] = sections
        rows.append(row)
    return rows, report


def write_report(report: JaCappellaReport, manifest_path: str | Path) -> Path:
    """``<manifest>.report.json`` beside the manifest."""
    path = Path(str(manifest_path) + ".report.json")
    atomic_write_json(path, report.to_json())
    counts = report.to_json()["counts"]
    logger.info(
        "jaCappella: %d songs kept, %d scat-only skipped, %d other problems (report: %s)",
        counts["kept"],
        counts["scat_only"],
        counts["other_problems"],
        path,
    )
    return path
