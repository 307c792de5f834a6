"""Lyric front end: vocabulary, lyric format, G2P for Chinese, English and Japanese.

Heavy back ends (jieba, g2p_en, pyopenjtalk) load lazily on first use.
"""

from songbloom.text.g2p import LANGUAGES, LyricG2P, default_g2p, detect_language, process_lyrics, split_by_script
from songbloom.text.lyrics import (
    SECONDS_PER_TAG_150S,
    SECONDS_PER_TAG_240S,
    Lyric,
    LyricFormatError,
    LyricProblem,
    Section,
    Sentence,
    canonical_tag,
    normalize_lyrics,
    parse_lyrics,
    validate_lyrics,
)
from songbloom.text.tokenizer import LyricEncoding, LyricTokenError, LyricTokenizer
from songbloom.text.vocab import TokenizedLyric, Vocabulary, load_vocab_list

__all__ = [
    "LANGUAGES",
    "SECONDS_PER_TAG_150S",
    "SECONDS_PER_TAG_240S",
    "Lyric",
    "LyricEncoding",
    "LyricFormatError",
    "LyricG2P",
    "LyricProblem",
    "LyricTokenError",
    "LyricTokenizer",
    "Section",
    "Sentence",
    "TokenizedLyric",
    "Vocabulary",
    "canonical_tag",
    "default_g2p",
    "detect_language",
    "load_vocab_list",
    "normalize_lyrics",
    "parse_lyrics",
    "process_lyrics",
    "split_by_script",
    "validate_lyrics",
]
