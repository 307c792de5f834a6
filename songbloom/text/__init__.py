"""Lyric front end: vocabulary, lyric format, G2P for Chinese, English and Japanese."""

from songbloom.text.vocab import TokenizedLyric, Vocabulary, load_vocab_list

__all__ = ["TokenizedLyric", "Vocabulary", "load_vocab_list"]
