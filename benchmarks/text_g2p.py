"""Lyric G2P throughput (lines per second) for each language, after the one-off back-end load.

The `load s` column is the one-off start-up of that language's back end (jieba dictionary, CMUdict +
g2p_en model, pyopenjtalk dictionary); the mixed row reuses the zh and en back ends.

Run from the repository root:  python benchmarks/text_g2p.py [--repeats 3]
Lines come from the shared G2P fixtures (../shared/fixtures/g2p, or $SONGBLOOM_SHARED).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from songbloom.text.g2p import LyricG2P


def _records(shared: Path) -> dict[str, list[tuple[str, str | None]]]:
    groups: dict[str, list[tuple[str, str | None]]] = {"zh": [], "en": [], "zh-en (mixed)": [], "ja": []}
    for name in ("zh_en.jsonl", "ja.jsonl"):
        with open(shared / "fixtures" / "g2p" / name, encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                if rec["kind"] != "line":
                    continue
                lang = rec["lang"]
                if lang in ("ja", "ja-en"):
                    groups["ja"].append((rec["text"], "ja"))
                elif lang == "zh-en":
                    groups["zh-en (mixed)"].append((rec["text"], None))
                else:
                    groups[lang].append((rec["text"], None))
    return groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    default_shared = os.environ.get("SONGBLOOM_SHARED", str(Path(__file__).resolve().parents[2] / "shared"))
    parser.add_argument("--shared", default=default_shared)
    args = parser.parse_args()
    groups = _records(Path(args.shared))
    g2p = LyricG2P()
    rows = []
    loads = {}
    for name in ("zh", "en", "ja"):
        t0 = time.perf_counter()
        g2p._backend(name)
        loads[name] = time.perf_counter() - t0
    for lang, lines in groups.items():
        load = loads.get(lang, 0.0)
        for text, language in lines:  # warm every lazy table (pypinyin phrases, jieba cache, ...)
            g2p(text, language=language)
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            for text, language in lines:
                g2p(text, language=language)
        dt = time.perf_counter() - t0
        n = len(lines) * args.repeats
        rows.append((lang, len(lines), load, n / dt, 1000 * dt / n))
    print(f"{'language':<16}{'lines':>6}{'load s':>9}{'lines/s':>10}{'ms/line':>9}")
    for lang, n, load, lps, ms in rows:
        print(f"{lang:<16}{n:>6}{load:>9.2f}{lps:>10.1f}{ms:>9.2f}")


if __name__ == "__main__":
    main()
