"""A synthetic song dataset made from numpy: structured songs with timed, release-format lyrics.

Each song is a sequence of sections (intro, verse, chorus, inst, ..., outro). Every section kind has its own
timbre (harmonic count, brightness, vibrato, noise) and pitch set, so section changes are audible and visible
in any encoder, and the lyrics carry exact section timestamps. The demo and the tests preprocess it like real
data: it exercises segmenting, lyric cropping, tag expansion and prompts without any download.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import soundfile as sf

from songbloom.data.lyrics import sections_to_lyrics
from songbloom.data.manifest import Section, write_manifest
from songbloom.text.vocab import Vocabulary

# (tag, relative length) of a pop-like form; scaled to each song's duration.
FORM = [("intro", 1.0), ("verse", 3.0), ("chorus", 3.0), ("inst", 1.5), ("verse", 3.0), ("chorus", 3.0), ("outro", 1.0)]
# timbre per tag: (base MIDI note, harmonics, brightness decay, vibrato Hz, noise level)
TIMBRES = {
    "intro": (48, 2, 0.5, 0.0, 0.01),
    "verse": (57, 6, 0.7, 5.0, 0.02),
    "chorus": (64, 10, 0.85, 6.0, 0.03),
    "bridge": (60, 8, 0.6, 4.0, 0.02),
    "inst": (52, 4, 0.9, 0.0, 0.05),
    "outro": (45, 3, 0.4, 0.0, 0.01),
}
EN_WORDS = ["light", "night", "sky", "run", "home", "fire", "rain", "heart", "dream", "song", "blue", "road"]


def _phoneme_pool(vocab: Vocabulary) -> list[str]:
    return [t for t in vocab.items if re.fullmatch(r"[A-Z]{1,2}[0-2]?", t)]


def _section_audio(tag: str, seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    base, n_harm, decay, vib, noise = TIMBRES[tag]
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    out = np.zeros((2, n), dtype=np.float64)
    note_len = 0.5 if tag in ("verse", "chorus", "bridge") else 1.0
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12])
    for k0 in range(0, n, int(note_len * sr)):
        k1 = min(n, k0 + int(note_len * sr))
        midi = base + rng.choice(scale)
        f0 = 440.0 * 2 ** ((midi - 69) / 12)
        tt = t[k0:k1]
        phase = 2 * np.pi * f0 * tt + (0.3 * np.sin(2 * np.pi * vib * tt) if vib else 0.0)
        env = np.minimum(1.0, np.minimum(tt - tt[0], tt[-1] - tt + 1e-3) * 40.0)
        tone = sum(decay**h * np.sin((h + 1) * phase) for h in range(n_harm)) * env
        pan = rng.uniform(0.3, 0.7)
        out[0, k0:k1] += tone * (1 - pan)
        out[1, k0:k1] += tone * pan
    out += noise * rng.standard_normal((2, n))
    return out


def make_song(seconds: float, sr: int, rng: np.random.Generator, lyric_style: str, vocab: Vocabulary):
    """One song: (stereo float32 [2, T], timed sections)."""
    total = sum(w for _, w in FORM)
    sections, chunks, t0 = [], [], 0.0
    pool = _phoneme_pool(vocab)
    for i, (tag, w) in enumerate(FORM):
        dur = seconds * w / total if i < len(FORM) - 1 else seconds - t0
        dur = round(dur, 3)
        text = ""
        if tag in ("verse", "chorus", "bridge"):
            n_sent = max(1, int(dur // 2))
            if lyric_style == "phoneme":
                sents = [" ".join(rng.choice(pool, size=int(rng.integers(3, 7)))) for _ in range(n_sent)]
                text = " . ".join(sents) + " ."
            else:
                sents = [" ".join(rng.choice(EN_WORDS, size=int(rng.integers(2, 5)))) for _ in range(n_sent)]
                text = ". ".join(sents) + "."
        sections.append(Section(tag, round(t0, 3), round(t0 + dur, 3), text))
        chunks.append(_section_audio(tag, dur, sr, rng))
        t0 += dur
    wav = np.concatenate(chunks, axis=1)
    wav = 0.5 * wav / max(1e-6, np.abs(wav).max())
    return wav.astype(np.float32), sections


def make_synthetic_dataset(
    out_dir: str | Path,
    num_songs: int = 8,
    min_seconds: float = 8.0,
    max_seconds: float = 16.0,
    sample_rate: int = 48000,
    seconds_per_tag: float = 1.0,
    lyric_style: str = "phoneme",
    seed: int = 0,
    with_prompt_files: bool = False,
) -> Path:
    """Write ``audio/*.wav`` and ``manifest.jsonl`` under ``out_dir``; return the manifest path.

    ``lyric_style`` is ``"phoneme"`` (lyrics already in vocabulary symbols: no G2P needed) or ``"text"``
    (English words, for the text front end). ``with_prompt_files`` also writes a 10 s prompt file per song.
    """
    out_dir = Path(out_dir)
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    vocab = Vocabulary.default()
    rows = []
    for i in range(num_songs):
        seconds = float(rng.uniform(min_seconds, max_seconds))
        wav, sections = make_song(seconds, sample_rate, rng, lyric_style, vocab)
        name = f"song{i:04d}"
        sf.write(out_dir / "audio" / f"{name}.wav", wav.T, sample_rate, subtype="PCM_16")
        row = {
            "idx": name,
            "audio_path": f"audio/{name}.wav",
            "lyrics": sections_to_lyrics(sections, seconds_per_tag),
            "sections": [{"tag": s.tag, "start": s.start, "end": s.end, "text": s.text} for s in sections],
            "language": "en",
            "song_id": name,
            "license": "CC0-1.0 (synthetic)",
        }
        if with_prompt_files:
            p = _section_audio("chorus", 10.0, sample_rate, rng).astype(np.float32)
            sf.write(out_dir / "audio" / f"{name}_prompt.wav", (0.5 * p / np.abs(p).max()).T, sample_rate)
            row["prompt_wav"] = f"audio/{name}_prompt.wav"
        rows.append(row)
    return write_manifest(rows, out_dir / "manifest.jsonl")
