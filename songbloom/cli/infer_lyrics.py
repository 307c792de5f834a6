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

from songbloom.text.g2p import LANGUAGES
from songbloom.text.lyric_policy import (  # noqa: F401  (the flags' machinery; importable from here as before)
    DEFAULT_POLICY,
    LYRICS_POLICIES,
    encode_lyrics,
    item_language,
    jsonl_language,
    lyric_losses,
)


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
