"""No scaffolding from the time the package was built in pieces: the package is one installed unit.

- No ``except ImportError`` / ``except ModuleNotFoundError`` around an import of our own package: a missing
  ``songbloom`` module is a bug to see, not a feature to degrade around.
- No such handler around code that imports nothing directly: it would also swallow an ImportError raised deep
  inside that code (a real breakage) and carry on.
- No ``pytest.importorskip("songbloom...")`` in tests: a test of our own code must fail, never skip, when that
  code does not import.
- No ``sys.path.insert`` / ``sys.path.append`` in scripts/ and benchmarks/: the package is installed (editable)
  and pytest puts the repository root on the path itself.

The checks read the syntax tree, so strings and comments that mention these names do not count.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE_DIRS = ("songbloom", "scripts", "benchmarks")
SOURCE_FILES = ("train.py", "infer.py")
IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError"}


def _python_files(root: Path, dirs: tuple[str, ...], files: tuple[str, ...] = ()) -> Iterator[Path]:
    for d in dirs:
        yield from sorted((root / d).rglob("*.py"))
    for f in files:
        if (root / f).is_file():
            yield root / f


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _where(root: Path, path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(root)}:{node.lineno}"


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    t = handler.type
    names = t.elts if isinstance(t, ast.Tuple) else [t]
    return any(getattr(n, "id", getattr(n, "attr", None)) in IMPORT_ERRORS for n in names)


def _direct_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements run by ``body`` itself (not those inside functions or classes it only defines)."""
    stack = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _imports_own_package(node: ast.Import | ast.ImportFrom) -> bool:
    if isinstance(node, ast.ImportFrom):
        if node.level > 0:  # a relative import inside songbloom/
            return True
        modules = [node.module or ""]
    else:
        modules = [a.name for a in node.names]
    return any(m == "songbloom" or m.startswith("songbloom.") for m in modules)


def import_error_fallbacks(root: Path) -> list[str]:
    """Try blocks with an ImportError handler that guard our own package or guard no import at all."""
    found = []
    for path in _python_files(root, SOURCE_DIRS, SOURCE_FILES):
        for node in ast.walk(_parse(path)):
            if not isinstance(node, ast.Try) or not any(_catches_import_error(h) for h in node.handlers):
                continue
            imports = list(_direct_imports(node.body))
            own = [i for i in imports if _imports_own_package(i)]
            if own:
                found.append(f"{_where(root, path, node)}: ImportError fallback around our own module "
                             f"(line {own[0].lineno})")
            elif not imports:
                found.append(f"{_where(root, path, node)}: ImportError handler around code that imports nothing "
                             "directly (it would hide an ImportError raised deep inside)")
    return found


def own_importorskips(root: Path) -> list[str]:
    found = []
    for path in _python_files(root, ("tests",)):
        for node in ast.walk(_parse(path)):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, (ast.Attribute, ast.Name))
                and getattr(node.func, "attr", getattr(node.func, "id", None)) == "importorskip"
                and node.args
                and not (isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
                         and not node.args[0].value.startswith("songbloom"))
            ):
                found.append(f"{_where(root, path, node)}: importorskip of our own package (or of a computed name)")
    return found


def sys_path_edits(root: Path) -> list[str]:
    found = []
    for path in _python_files(root, ("scripts", "benchmarks")):
        for node in ast.walk(_parse(path)):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("insert", "append", "extend")
                and isinstance(node.func.value, ast.Attribute)
                and node.func.value.attr == "path"
                and isinstance(node.func.value.value, ast.Name)
                and node.func.value.value.id == "sys"
            ):
                found.append(f"{_where(root, path, node)}: sys.path.{node.func.attr}")
    return found


def test_no_import_error_fallbacks_around_our_own_modules():
    found = import_error_fallbacks(REPO)
    assert not found, "\n".join(found)


def test_tests_never_importorskip_our_own_modules():
    found = own_importorskips(REPO)
    assert not found, "\n".join(found)


def test_scripts_and_benchmarks_do_not_edit_sys_path():
    found = sys_path_edits(REPO)
    assert not found, "\n".join(found)


def test_the_checks_see_what_they_are_meant_to_see(tmp_path):
    """Each check flags a minimal example of what it forbids, and passes the allowed forms."""
    (tmp_path / "songbloom").mkdir()
    (tmp_path / "scripts").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "songbloom" / "bad.py").write_text(
        "try:\n    from songbloom.x import y\nexcept ImportError:\n    y = None\n"
        "try:\n    from . import z\nexcept (ValueError, ModuleNotFoundError):\n    z = None\n"
        "try:\n    run_pipeline()\nexcept ImportError:\n    pass\n"
    )
    (tmp_path / "songbloom" / "good.py").write_text(
        "try:\n    import optional_thing\nexcept ImportError:\n    optional_thing = None\n"
        "def f():\n    from songbloom import x\n    return x\n"
        "# except ImportError: from songbloom import x\n"
    )
    (tmp_path / "scripts" / "s.py").write_text("import sys\nsys.path.insert(0, '.')\nsys.path.append('.')\n")
    (tmp_path / "tests" / "t.py").write_text(
        "import pytest\npytest.importorskip('songbloom.release')\npytest.importorskip('torchcodec')\n"
    )
    assert [f.split(":")[:2] for f in import_error_fallbacks(tmp_path)] == [
        ["songbloom/bad.py", "1"], ["songbloom/bad.py", "5"], ["songbloom/bad.py", "9"]
    ]
    assert [f.split(":")[:2] for f in sys_path_edits(tmp_path)] == [["scripts/s.py", "2"], ["scripts/s.py", "3"]]
    assert [f.split(":")[:2] for f in own_importorskips(tmp_path)] == [["tests/t.py", "2"]]
