"""``python -m songbloom.text FILE|-``: show phonemes, dropped tokens and truncation for each lyric line.

Also the ``songbloom-text`` command (``songbloom.cli.text``). The code lives here, in the text layer, so that
``python -m songbloom.text`` runs it without an upward import (``songbloom/text/__main__.py`` only calls ``main``).

Each input line is one lyric (a whole song in canonical one-line form, or a single lyric line). With
``--json`` one JSON object is printed per input line. ``dropped`` lists what would be lost: text the front end
cannot read (Hangul, emoji, ...; songbloom.text.scripts) as it appears, then tokens outside the vocabulary;
``language`` is the language the line was read in and ``language_source`` says whether it was given or detected.
The exit status is 1 when any line lost something, was truncated, failed or broke the format.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from songbloom.text.g2p import LANGUAGES, LyricG2P, detect_language
from songbloom.text.lyrics import validate_lyrics
from songbloom.text.tokenizer import DEFAULT_MAX_LEN, LyricTokenizer


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("file", help="text file with one lyric per line, or - for stdin")
    p.add_argument("--json", action="store_true", help="print one JSON object per input line")
    p.add_argument("--language", choices=LANGUAGES, default=None, help="override language detection")
    p.add_argument("--max-len", type=int, default=DEFAULT_MAX_LEN, help="conditioner max_len (600; 1000 for 240 s)")
    p.add_argument("--check-format", action="store_true", help="also validate the lyric format of each line")
    p.add_argument("--japanese-latin", choices=("english", "pyopenjtalk"), default="english",
                   help="how Latin words inside Japanese are read")
    return p


def _read_lines(file: str) -> list[bytes]:
    """The raw lines of ``file`` (``-``: stdin); each is decoded on its own, so one bad line stays one line."""
    if file == "-":
        return sys.stdin.buffer.read().splitlines()
    try:
        return Path(file).read_bytes().splitlines()
    except FileNotFoundError as e:
        raise SystemExit(
            f"error: {file}: no such file; give a text file with one lyric per line, or - for stdin"
        ) from e
    except OSError as e:
        raise SystemExit(
            f"error: {file}: cannot read it ({e.strerror}); give a readable text file, or - for stdin"
        ) from e


def _decode(raw: bytes, file: str, lineno: int) -> tuple[str | None, str | None]:
    try:
        return raw.decode("utf-8").rstrip("\r"), None
    except UnicodeDecodeError as e:
        return None, (f"{file}:{lineno}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1}); "
                      "save the file as UTF-8")


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    lines = _read_lines(args.file)
    tokenizer = LyricTokenizer(max_len=args.max_len, policy="drop", g2p=LyricG2P(japanese_latin=args.japanese_latin))
    n_bad = 0
    for lineno, raw in enumerate(lines, start=1):
        line, bad_text = _decode(raw, args.file, lineno)
        if bad_text:
            n_bad += 1
            print(f"ERROR {bad_text}", file=sys.stderr)
            continue
        n_bad += _show_line(args, tokenizer, lineno, line)
    if not args.json:
        print(f"{n_bad} line(s) with problems", file=sys.stderr)
    return 1 if n_bad else 0


def _show_line(args: argparse.Namespace, tokenizer: LyricTokenizer, lineno: int, line: str) -> bool:
    """Print one lyric line's analysis; True when it has a problem."""
    if not line.strip():
        return False
    language, source = (args.language, "given") if args.language else (detect_language(line), "detected")
    try:
        enc = tokenizer.encode(line, language=language)
        error = None
    except Exception as exc:  # report and go on: a data check must cover every line
        enc, error = None, f"{type(exc).__name__}: {exc}"
    problems = [str(p) for p in validate_lyrics(line)] if args.check_format else []
    bad = error is not None or bool(problems) or (enc is not None and not enc.ok)
    if args.json:
        _print_json(args, (lineno, line, language, source), enc, error, problems)
        return bad
    print(f"line {lineno} ({language}, {source}): {line}")
    if error:
        print(f"  ERROR {error}")
        return bad
    print(f"  phonemes ({enc.num_tokens_before_truncation}): {enc.processed}")
    if enc.dropped:
        print(f"  dropped ({len(enc.dropped)}): {' '.join(repr(t) for t in enc.dropped)}")
    if enc.truncated:
        print(f"  TRUNCATED: {enc.num_tokens_before_truncation} tokens > max_len {args.max_len}")
    for p in problems:
        print(f"  format: {p}")
    return bad



def _print_json(args: argparse.Namespace, where: tuple[int, str, str, str], enc, error: str | None,
                problems: list[str]) -> None:
    lineno, line, language, source = where
    record: dict = {"line": lineno, "text": line, "language": language, "language_source": source}
    if enc is not None:
        record.update(tokens=enc.tokens, ids=enc.ids, dropped=enc.dropped, truncated=enc.truncated,
                      num_tokens=enc.num_tokens_before_truncation)
    else:
        record.update(tokens=[], ids=[], dropped=[], truncated=False, error=error)
    if args.check_format:
        record["format_problems"] = problems
    print(json.dumps(record, ensure_ascii=False))
