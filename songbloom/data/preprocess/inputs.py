"""One song's inputs, read and checked before anything is encoded: audio, lyrics, sketch tokens.

Each reader raises :class:`SampleError` for a song that cannot be used; the checks run in the order the report
has always followed (audio, lyrics, then, for a song not already done, the sketch tokens).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from songbloom.checkpoints.safe_load import torch_load_safely
from songbloom.data.audio import AudioError, is_silent, load_audio
from songbloom.data.encoders import Encoders, LyricsError, LyricsProcessor
from songbloom.data.lyrics import TokenLine, TokenSection, check_release_lyrics
from songbloom.data.manifest import Section, SongRecord
from songbloom.data.preprocess.config import PreprocessConfig
from songbloom.data.preprocess.report import SampleError


@dataclass
class SongAudio:
    """The song's waveform at the VAE rate, cut to whole latent frames."""

    wav: torch.Tensor  # (C, frames * ratio)
    frames: int
    ratio: int
    sample_rate: int
    orig_sample_rate: int
    orig_channels: int

    @property
    def fps(self) -> float:
        return self.sample_rate / self.ratio

    @property
    def duration(self) -> float:
        return self.frames / self.fps


@dataclass
class SongLyrics:
    """Lyric ids: per timed section (crop-able to a segment), else one untimed list for the whole song."""

    sections: Sequence[Section] | None
    tok_sections: list[TokenSection]
    song_ids: list[int]
    dropped: list[str]
    processed_text: str
    sep_ids: list[int]

    @property
    def timed(self) -> bool:
        return self.sections is not None


# ----------------------------------------------------------------------------------------------- audio
def read_song_audio(rec: SongRecord, enc: Encoders, cfg: PreprocessConfig) -> SongAudio:
    ratio = int(enc.latent.downsampling_ratio)
    sr = int(enc.latent.sample_rate)
    try:
        audio = load_audio(rec.audio_path, sr, cfg.channels, cfg.min_sample_rate, cfg.min_seconds)
    except AudioError as e:
        raise SampleError(str(e), e.kind, file=rec.audio_path) from None
    if is_silent(audio.wav, cfg.silence_db):
        raise SampleError(f"silence-only audio (peak under {cfg.silence_db} dBFS)", "silence", file=rec.audio_path)
    frames = audio.wav.shape[-1] // ratio
    if frames < cfg.block_size:
        raise SampleError(
            f"{frames} latent frames is shorter than one block ({cfg.block_size})", "too_short", file=rec.audio_path
        )
    return SongAudio(audio.wav[:, : frames * ratio], frames, ratio, sr, audio.orig_sample_rate, audio.orig_channels)


# ----------------------------------------------------------------------------------------------- lyrics
def _song_sections(rec: SongRecord, duration: float) -> Sequence[Section] | None:
    """The timed sections (an untimed instrumental gets one ``inst`` section), checked against the audio."""
    sections = rec.sections
    if sections is None and rec.instrumental and not (rec.lyrics or "").strip():
        sections = [Section("inst", 0.0, duration)]
    if sections is None:
        return None
    if sections[-1].end > duration + 1.0:
        raise SampleError(
            f"last section ends at {sections[-1].end:.2f} s but the audio lasts {duration:.2f} s",
            "bad_sections",
            field="sections",
        )
    if not rec.instrumental and not any(s.vocal for s in sections):
        raise SampleError(
            "no vocal section but the song is not marked instrumental", "invalid_lyrics", field="sections"
        )
    return sections


def song_language(rec: SongRecord, texts: Sequence[str]) -> str | None:
    """The language every section and line of the song is read in: the manifest's, else detected on the whole
    song (a kanji-only line of a Japanese song must not be read as Mandarin on its own)."""
    if rec.language is not None:
        return rec.language
    from songbloom.text.g2p import detect_language

    joined = " ".join(t for t in texts if t)
    return detect_language(joined) if joined.strip() else None


def _token_section(s: Section, lyr: LyricsProcessor, language: str | None) -> tuple[TokenSection, list[str], str]:
    """One section's ids; a section with timed lines is read line by line (tag first) so that windows can take
    single lines: the ids are the tag's followed by each line's, as reading the whole ``[tag] a . b .`` gives."""
    if not (s.vocal and s.lines):
        res = lyr.process(f"[{s.tag}] {s.text}" if s.vocal else f"[{s.tag}]", language)
        return TokenSection(s.tag, s.start, s.end, tuple(res.ids)), list(res.dropped), res.text
    head = lyr.process(f"[{s.tag}]", language)
    ids, dropped, texts, lines = list(head.ids), list(head.dropped), [head.text], []
    for ln in s.lines:
        res = lyr.process(f"{ln.text} .", language)
        ids += res.ids
        dropped += res.dropped
        texts.append(res.text)
        lines.append(TokenLine(ln.start, ln.end, tuple(res.ids)))
    return TokenSection(s.tag, s.start, s.end, tuple(ids), tuple(lines)), dropped, " ".join(texts)


def _token_sections(
    rec: SongRecord, sections: Sequence[Section], lyr: LyricsProcessor
) -> tuple[list[TokenSection], list[str], str]:
    language = song_language(rec, [s.text for s in sections])
    out, dropped, texts = [], [], []
    for s in sections:
        tok, lost, text = _token_section(s, lyr, language)
        dropped += lost
        texts.append(text)
        out.append(tok)
    return out, dropped, " , ".join(texts)


def read_song_lyrics(rec: SongRecord, enc: Encoders, duration: float) -> SongLyrics:
    sections = _song_sections(rec, duration)
    if sections is None:
        why = check_release_lyrics(rec.lyrics, rec.instrumental)
        if why:
            raise SampleError(why, "empty_lyrics" if "empty" in why else "invalid_lyrics", field="lyrics")
    try:
        if sections is not None:
            tok_sections, dropped, processed_text = _token_sections(rec, sections, enc.lyrics)
            song_ids: list[int] = []
        else:
            res = enc.lyrics.process(rec.lyrics or "", rec.language)
            tok_sections, dropped, processed_text, song_ids = [], res.dropped, res.text, res.ids
    except LyricsError as e:
        raise SampleError(str(e), "oov_lyrics", field="lyrics") from None
    except Exception as e:  # a front-end failure on one song must not stop the batch
        raise SampleError(
            f"lyrics processing failed: {type(e).__name__}: {e}", "invalid_lyrics", field="lyrics"
        ) from None
    sep_ids = [enc.lyrics.vocabulary.index[","]] if "," in enc.lyrics.vocabulary else []
    return SongLyrics(sections, tok_sections, list(song_ids), list(dropped), processed_text, sep_ids)


# ----------------------------------------------------------------------------------------------- sketch
def _load_sketch_file(path: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise SampleError(f"{path}: sketch file not found", "missing_file", file=path)
    try:
        if p.suffix == ".npy":
            arr = np.load(p, allow_pickle=False)
        elif p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                arr = z["sketch"] if "sketch" in z else z[z.files[0]]
        elif p.suffix == ".pt":
            obj = torch_load_safely(p, what="a tensor of sketch ids (or {'sketch': tensor})")
            obj = obj["sketch"] if isinstance(obj, dict) else obj
            arr = torch.as_tensor(obj).numpy()
        else:
            raise SampleError(f"{path}: unknown sketch file type (use .npy, .npz or .pt)", "bad_field", file=path)
    except SampleError:
        raise
    except Exception as e:
        raise SampleError(f"{path}: cannot read sketch tokens ({e})", "decode_error", file=path) from None
    if not np.issubdtype(arr.dtype, np.integer):
        raise SampleError(f"{path}: sketch tokens must be integers, got {arr.dtype}", "bad_field", file=path)
    return arr.reshape(-1).astype(np.int64)


def read_song_sketch(rec: SongRecord, enc: Encoders, cfg: PreprocessConfig, frames: int) -> np.ndarray | None:
    """The manifest's song-level sketch tokens, or None when the codebook tokenizes each segment."""
    song_tokens = None
    if rec.sketch_tokens is not None:
        song_tokens = np.asarray(rec.sketch_tokens, dtype=np.int64)
    elif rec.sketch_path is not None:
        song_tokens = _load_sketch_file(rec.sketch_path)
    if song_tokens is None and enc.sketch is None:
        raise SampleError(
            "no sketch tokens: give sketch_tokens/sketch_path or a codebook (--codebook)",
            "no_sketch",
            field="sketch_tokens",
        )
    if song_tokens is not None and abs(len(song_tokens) - frames) > cfg.length_tolerance:
        raise SampleError(
            f"sketch has {len(song_tokens)} frames but the audio has {frames} latent frames "
            f"(tolerance {cfg.length_tolerance})",
            "length_mismatch",
            field="sketch_tokens",
        )
    return song_tokens
