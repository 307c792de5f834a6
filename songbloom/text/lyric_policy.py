"""Lyrics of a generation job: ids for the model, what text is lost, and which language each item is read in.

Shared by ``infer.py`` (:mod:`songbloom.cli.infer_lyrics` adds its flags) and the sketch-recovery corpus
(through :mod:`songbloom.inference.jobs`), so both turn a JSONL line into the same lyric ids; no torch here.

Policies (``--lyrics-policy``): ``warn`` generates and returns the losses as warnings, ``error`` fails the item,
``drop`` generates and logs the losses at INFO. Lyrics that produce no vocabulary token at all always fail.
Language: the item's own > the caller's > the checkpoint's training language > detection on the lyrics.
"""

from __future__ import annotations

import logging

from songbloom.text.g2p import LANGUAGES

logger = logging.getLogger(__name__)

LYRICS_POLICIES = ("error", "warn", "drop")
DEFAULT_POLICY = "warn"


def jsonl_language(obj: dict) -> tuple[str | None, str | None]:
    """(the line's ``language`` or None, a problem to report or None)."""
    language = obj.get("language")
    if language is None or language == "":
        return None, None
    if language not in LANGUAGES:
        return None, f"unknown language {language!r}; use one of {list(LANGUAGES)} (or leave it out)"
    return str(language), None


def item_language(
    item_language: str | None, cli_language: str | None, checkpoint_language: str | None, lyrics: str
) -> tuple[str, str]:
    """(language, where it came from): JSONL ``language`` > ``--language`` > checkpoint > detection."""
    from songbloom.text.g2p import detect_language

    for language, source in (
        (item_language, "the JSONL line's language"),
        (cli_language, "--language"),
        (checkpoint_language, "the checkpoint's training language"),
    ):
        if language:
            return language, source
    return detect_language(lyrics), "detected from the lyrics"


def lyric_losses(text: str, language: str | None, vocab, max_len: int) -> tuple[list[int], list[str]]:
    """(ids as the model embeds them before its max_len cut, one note per kind of loss)."""
    from songbloom.text import process_lyrics
    from songbloom.text.scripts import unreadable_runs

    tok = vocab.tokenize(process_lyrics(text, language=language))
    notes = []
    unreadable = unreadable_runs(text, language)
    if unreadable:
        shown = ", ".join(repr(t) for t in unreadable[:10])
        notes.append(f"{len(unreadable)} piece(s) of text the front end cannot read ({language}) are dropped: {shown}")
    if tok.dropped:
        shown = ", ".join(repr(t) for t in list(tok.dropped)[:10])
        notes.append(f"{len(tok.dropped)} lyric token(s) not in the vocabulary are dropped: {shown}")
    if len(tok.ids) > max_len:
        notes.append(f"lyrics have {len(tok.ids)} tokens; the model reads the first {max_len} (the rest is cut)")
    if not any(tok.ids):  # nothing but id 0 (the empty item): no tag, phoneme or punctuation survived
        raise ValueError("the lyrics produce no vocabulary tokens (empty, or nothing the G2P can read)")
    return list(tok.ids), notes


def encode_lyrics(
    text: str, vocab, max_len: int, *, strict: bool = False, policy: str | None = None, language: str | None = None
) -> tuple[list[int], list[str]]:
    """Raw lyrics -> vocabulary ids; returns (ids, warnings). Tokens the vocabulary lacks are dropped and ids past
    ``max_len`` cut, as the official conditioner does; the policy says whether that fails the item (``error``,
    or ``strict``), is returned as warnings (``warn``) or only logged (``drop``)."""
    policy = "error" if strict else (policy or DEFAULT_POLICY)
    ids, notes = lyric_losses(text, language, vocab, max_len)
    if notes and policy == "error":
        raise ValueError("; ".join(notes))
    if notes and policy == "drop":
        for note in notes:
            logger.info("lyrics (--lyrics-policy drop): %s", note)
        return ids, []
    return ids, notes


def lyric_format_notes(text: str) -> list[str]:
    """The lyric format checks preprocessing runs (unknown tags, text before any tag, ...), one note per kind."""
    from songbloom.text.lyrics import validate_lyrics

    by_kind: dict[str, list] = {}
    for problem in validate_lyrics(text):
        by_kind.setdefault(problem.kind, []).append(problem)
    return [
        f"lyric format: {ps[0]}" + (f" (and {len(ps) - 1} more like it)" if len(ps) > 1 else "")
        for ps in by_kind.values()
    ]
