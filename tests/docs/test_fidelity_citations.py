"""Comments that cite docs/design/fidelity.md name a section that exists; none cites the old outside notes.

Fidelity notes used to be cited by the item and section numbers of a document that is not in the repository;
they now cite ``docs/design/fidelity.md#<identifier>``, where each ``## <identifier>`` heading is a section.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGE = REPO_ROOT / "docs" / "design" / "fidelity.md"
SECTION = re.compile(r"^## ([a-z0-9][a-z0-9-]*)\s*$", re.M)
CITATION = re.compile(r"fidelity\.md#([A-Za-z0-9_-]+)")
# The old citation forms: "errata item 11", "errata 12", "spec 1.4" / "spec 1.4-1.6".
OLD_CITATION = re.compile(r"\berrata(\s+item)?\s+\d+|\bspec\s+\d+\.\d+", re.I)
SEARCHED = ("songbloom", "scripts", "benchmarks", "tests", "docs", "conf")
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".sh", ".sbatch"}


def _files() -> list[Path]:
    files = [REPO_ROOT / "README.md", REPO_ROOT / "train.py", REPO_ROOT / "infer.py"]
    for d in SEARCHED:
        files += [p for p in sorted((REPO_ROOT / d).rglob("*")) if p.suffix in SUFFIXES and p.is_file()]
    return [p for p in files if p.is_file() and p != Path(__file__).resolve()]


def sections() -> list[str]:
    return SECTION.findall(PAGE.read_text(encoding="utf-8"))


def test_sections_have_unique_identifiers():
    names = sections()
    assert len(names) >= 10
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


def test_every_citation_names_an_existing_section():
    known = set(sections())
    cited, broken = 0, []
    for path in _files():
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for name in CITATION.findall(line):
                cited += 1
                if name not in known:
                    broken.append(f"{path.relative_to(REPO_ROOT)}:{lineno}: #{name}")
    assert cited >= 10, "the fidelity citations were expected in the model and sampler code"
    assert not broken, "citations of missing fidelity sections:\n" + "\n".join(broken)


def test_nothing_cites_the_old_outside_document():
    old = []
    for path in _files():
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if OLD_CITATION.search(line):
                old.append(f"{path.relative_to(REPO_ROOT)}:{lineno}: {line.strip()}")
    assert not old, "cite docs/design/fidelity.md#<section> instead:\n" + "\n".join(old)


def test_every_section_names_official_code_and_our_citing_files():
    text = PAGE.read_text(encoding="utf-8")
    bodies = re.split(r"^## ", text, flags=re.M)[1:]
    for body in bodies:
        name = body.split("\n", 1)[0].strip()
        assert "Official:" in body, f"## {name}: say which official file and line it concerns"
        assert "Kind:" in body, f"## {name}: say whether we reproduce or differ"
