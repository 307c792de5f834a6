#!/usr/bin/env python
"""Agreement of our lyric front end with the official one on lines neither was tuned on.

The official front end (tencent-ailab/SongBloom at ef78022) runs in its own interpreter, set up as
``../shared/fixtures/g2p/README.md`` describes (jieba_fast 0.53, pypinyin 0.51.0, cn2an 0.5.22,
wordsegment 1.3.1, g2p-en 2.1.0, nltk 3.8.1, num2words 0.5.13, inflect 7.5.0, numpy 1.26.4, torch, pyyaml)::

    python benchmarks/g2p_agreement.py --official-src /path/to/SongBloom --official-python /path/to/venv/bin/python

Its ``SongBloom/g2p`` tree is copied to a scratch folder (the checkout is never written to), the
tagger pickle is unzipped there from the bundled ``averaged_perceptron_tagger.zip`` (checked against the
blob id the commit records), ``NLTK_DATA`` and ``PYTHONPATH`` are set as its ``set_env.sh`` does, and
the sampler's ``_process_lyric`` method is compiled from the tree's ``songbloom_pl.py`` and called with
the ``phoneme`` processor, network access refused. Ours is :func:`songbloom.text.process_lyrics`.

A line agrees when both give the same vocabulary tokens (what the conditioner embeds); the table also
counts lines whose processed strings are identical. Differences must be listed in
``tests/text/data/known_differences.yaml`` under ``g2p_lines:<line number>``; the exit code is 1 when one is
not (or when a listed one now agrees).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
LINES = REPO / "benchmarks" / "data" / "g2p_lines.txt"
KNOWN = REPO / "tests" / "text" / "data" / "known_differences.yaml"
KEY_PREFIX = "g2p_lines:"
TAGGER_DIR = "SongBloom/g2p/cn_zh_g2p/nltk_data/taggers"
TAGGER_PICKLE_BLOB = "28fd11a2570c67e9ef6fb8a77951642ac05c452f"

# Runs under the official interpreter: reads lines (JSON) on stdin, writes processed strings (JSON).
OFFICIAL_DRIVER = r"""
import ast, contextlib, io, json, socket, sys
def refuse(*a, **k):
    raise OSError("network access refused")
socket.socket.connect = socket.socket.connect_ex = socket.create_connection = socket.getaddrinfo = refuse
import nltk
nltk.download = refuse
from SongBloom.g2p.lyric_common import LABELS, key2processor, symbols
src_path = "SongBloom/models/songbloom/songbloom_pl.py"
tree = ast.parse(open(ORIGINAL + "/" + src_path, encoding="utf-8").read())
cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "SongBloom_Sampler")
fn = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "_process_lyric")
namespace = {"symbols": symbols, "LABELS": LABELS}
exec(compile(ast.Module(body=[fn], type_ignores=[]), src_path, "exec"), namespace)
class Sampler:
    lyric_processor_key = "phoneme"
    lyric_processor = key2processor["phoneme"]
out = []
for line in json.load(sys.stdin):
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        processed = namespace["_process_lyric"](Sampler(), line)
    out.append({"processed": processed, "printed": printed.getvalue()})
print(json.dumps(out, ensure_ascii=False))
"""


def homograph_and_dictionary_items() -> list[tuple[int, str]]:
    """Single items that exercise the English data: every g2p_en homograph in five spellings (lower, Title,
    UPPER, with a comma, possessive) and every word of the dictionary overlay (set or removed)."""
    from songbloom.text.en import DICTIONARY_OVERLAY_PATH, EnglishG2P

    items = [f for w in sorted(EnglishG2P().homographs) for f in (w, w.title(), w.upper(), w + ",", w + "'s")]
    overlay = json.loads(DICTIONARY_OVERLAY_PATH.read_text(encoding="utf-8"))
    items += [*overlay["set"], *overlay["remove"]]
    return list(enumerate(items, 1))


def read_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of every non-comment, non-empty row."""
    rows = path.read_text(encoding="utf-8").splitlines()
    return [(n, row) for n, row in enumerate(rows, 1) if row.strip() and not row.startswith("#")]


def _blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def prepare_official_tree(src: Path, scratch: Path) -> Path:
    """Copy of the official G2P tree with the tagger pickle restored; returns its nltk_data folder."""
    shutil.copytree(src / "SongBloom" / "g2p", scratch / "SongBloom" / "g2p")
    taggers = scratch / TAGGER_DIR
    with zipfile.ZipFile(taggers / "averaged_perceptron_tagger.zip") as z:
        member = "averaged_perceptron_tagger/averaged_perceptron_tagger.pickle"
        data = z.read(member)
    if _blob_id(data) != TAGGER_PICKLE_BLOB:
        raise SystemExit("the bundled tagger zip does not hold the pickle the official commit records")
    (taggers / member).parent.mkdir(parents=True, exist_ok=True)
    (taggers / member).write_bytes(data)
    return scratch / "SongBloom" / "g2p" / "cn_zh_g2p" / "nltk_data"


def run_official(src: Path, python: str, lines: list[str]) -> tuple[list[dict], float]:
    with tempfile.TemporaryDirectory(prefix="g2p_official_") as tmp:
        scratch = Path(tmp)
        nltk_data = prepare_official_tree(src, scratch)
        env = dict(os.environ, NLTK_DATA=str(nltk_data), PYTHONPATH=str(scratch), PYTHONDONTWRITEBYTECODE="1")
        driver = f"ORIGINAL = {str(src)!r}\n" + OFFICIAL_DRIVER
        start = time.perf_counter()
        proc = subprocess.run([python, "-c", driver], input=json.dumps(lines), capture_output=True, text=True,
                              env=env, cwd=scratch, timeout=3600)
        seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"the official front end failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), seconds


def run_ours(lines: list[str]) -> tuple[list[str], float]:
    from songbloom.text import process_lyrics

    start = time.perf_counter()
    out = [process_lyrics(line) for line in lines]
    return out, time.perf_counter() - start


def compare(rows, official, ours) -> list[dict]:
    from songbloom.text.vocab import Vocabulary

    vocab = Vocabulary.default()
    results = []
    for (number, text), ref, mine in zip(rows, official, ours, strict=True):
        ref_tokens = [t for t in ref["processed"].split(" ") if t in vocab]
        our_tokens = [t for t in mine.split(" ") if t in vocab]
        results.append({"key": f"{KEY_PREFIX}{number}", "text": text, "official": ref["processed"], "ours": mine,
                        "same_string": ref["processed"] == mine, "same_tokens": ref_tokens == our_tokens,
                        "official_printed": ref["printed"]})
    return results


def check_known(results: list[dict], known_path: Path) -> tuple[list[str], list[str]]:
    known = {k: v for k, v in (yaml.safe_load(known_path.read_text(encoding="utf-8")) or {}).items()
             if k.startswith(KEY_PREFIX)}
    differing = {r["key"] for r in results if not r["same_tokens"]}
    return sorted(differing - set(known)), sorted(set(known) - differing)


def report(results: list[dict], times: dict[str, float], undocumented: list[str], stale: list[str]) -> str:
    n = len(results)
    tokens = sum(r["same_tokens"] for r in results)
    strings = sum(r["same_string"] for r in results)
    out = [
        "| lines | same vocabulary tokens | same processed string | official run (s) | ours (s) |",
        "|---|---|---|---|---|",
        f"| {n} | {tokens} ({tokens / n:.1%}) | {strings} ({strings / n:.1%}) "
        f"| {times['official']:.1f} | {times['ours']:.1f} |",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}.",
    ]
    for r in results:
        if not r["same_tokens"]:
            out += ["", f"- `{r['key']}` {r['text']!r}", f"  - official: `{r['official']}`",
                    f"  - ours:     `{r['ours']}`"]
    if undocumented:
        out += ["", f"Not listed in {KNOWN.name}: {', '.join(undocumented)}"]
    if stale:
        out += ["", f"Listed in {KNOWN.name} but now agreeing: {', '.join(stale)}"]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official-src", type=Path, required=True, help="checkout of tencent-ailab/SongBloom")
    parser.add_argument("--official-python", required=True, help="interpreter with the official G2P pins")
    parser.add_argument("--lines", type=Path, default=LINES)
    parser.add_argument("--known", type=Path, default=KNOWN)
    parser.add_argument("--json", type=Path, help="also write every line's result here")
    parser.add_argument("--english-items", action="store_true",
                        help="compare single English items built from the data (homographs, overlay words) instead "
                             "of the lines; known differences are not checked")
    args = parser.parse_args(argv)
    rows = homograph_and_dictionary_items() if args.english_items else read_lines(args.lines)
    texts = [text for _, text in rows]
    official, official_s = run_official(args.official_src.resolve(), args.official_python, texts)
    ours, ours_s = run_ours(texts)
    results = compare(rows, official, ours)
    undocumented, stale = ([], []) if args.english_items else check_known(results, args.known)
    print(report(results, {"official": official_s, "ours": ours_s}, undocumented, stale))
    if args.json:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return 1 if undocumented or stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
