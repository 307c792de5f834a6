"""Lyrics at inference (``songbloom.cli.infer``): what to do with lyrics that lose text, and which language an
item's lyrics are read in.

``--lyrics-policy`` (the preprocessing flag of the same name, with inference's default ``warn``):

* losses are text the front end cannot read (Hangul, emoji, ...; shown as written), tokens outside the model's
  vocabulary, and ids past the model's ``lyric_max_len`` (the model reads only the first ones);
* ``warn`` (default): the item is generated; every loss is a warning in the log and in the closing summary;
* ``error`` (``--strict-lyrics`` is its alias): an item with any loss is not generated, it is reported as
  failed (``file:line (idx ...): lyrics: ...``), the other items still run, and the exit code is 1;
* ``drop``: the item is generated, losses are logged at INFO only (not counted as warnings).

Lyrics that produce no vocabulary token at all always fail the item.

Language, per item: the JSONL line's ``language`` > ``--language`` > the language the checkpoint was trained on
(recorded in training checkpoints and exports) > detection on the item's lyrics; the log names the one used.
"""

from __future__ import annotations

import argparse
import logging

from songbloom.text.g2p import LANGUAGES

logger = logging.getLogger(__name__)

LYRICS_POLICIES = ("error", "warn", "drop")
DEFAULT_POLICY = "warn"


def add_lyrics_arguments(group) -> None:
    """``--lyrics-policy``, ``--strict-lyrics`` (alias of ``--lyrics-policy error``) and ``--language``."""
    group.add_argument(
        "--lyrics-policy",
        choices=LYRICS_POLICIES,
        default=None,
        help="lyrics that lose text (unreadable script, out-of-vocabulary tokens, past lyric_max_len): "
        "warn (default): generate and warn; error: fail the item; drop: generate, log at INFO",
    )
    group.add_argument("--strict-lyrics", action="store_true", help="alias of --lyrics-policy error")
    group.add_argument(
        "--language",
        choices=LANGUAGES,
        default=None,
        help="read lyrics in this language unless the JSONL line sets 'language' "
        "(default: the checkpoint's training language, else detected per item)",
    )


def lyrics_policy(args: argparse.Namespace) -> str:
    """The policy in effect: ``--strict-lyrics`` is ``error``; it cannot be combined with another policy."""
    policy = getattr(args, "lyrics_policy", None)
    if getattr(args, "strict_lyrics", False):
        if policy not in (None, "error"):
            raise SystemExit(f"--strict-lyrics is --lyrics-policy error; it contradicts --lyrics-policy {policy}")
        return "error"
    return policy or DEFAULT_POLICY


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
