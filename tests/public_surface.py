"""Today's public surface, recorded before the package restructuring so that the moves keep it working.

Three parts, stored in ``tests/fixtures/public_surface.json`` and checked by ``tests/test_public_surface.py``:

- ``modules``: the public names (no leading ``_``) of ``songbloom.api``, ``songbloom.config``, the ``songbloom.eval``
  package and every module of ``songbloom.models``, ``songbloom.inference`` and ``songbloom.export``. A name counts
  when the module defines it or re-exports one of ours (``__module__`` under ``songbloom``), or when it is a plain
  constant; imported third-party names (``Path``, ``torch``, loggers) are not part of the surface.
- ``cli``: the option strings of every command line: ``python -m`` modules, ``scripts/*.py``,
  ``scripts/slurm/*.py``, ``infer.py`` (and each argparse subcommand), read from their ``--help``; for the Hydra
  ``train.py`` the config groups its ``--help`` lists.
- ``config``: every option of every config group (``conf/<group>/<option>.yaml``), and the group options and
  dotted keys the docs name (``trainer=ddp``, ``lora.targets``). A documented key that does not compose today is
  listed under ``documented_but_missing``, not as a must-exist key.

Record (only to ADD to the surface; the snapshot was written by main at commit 57c9a6f, before the moves)::

    PYTHONPATH=. python -m tests.public_surface write

``python -m tests.public_surface cli`` prints the current command-line surface as JSON: the test runs it in one
subprocess, which executes every entry file with ``--help`` in turn (one interpreter start, not one per command).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import pkgutil
import re
import runpy
import sys
import types
import warnings
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = REPO_ROOT / "tests" / "fixtures" / "public_surface.json"
CONF_DIR = REPO_ROOT / "conf"
DOCS_DIR = REPO_ROOT / "docs"

SURFACE_PACKAGES = ("songbloom.models", "songbloom.inference", "songbloom.export")  # every module in them
SURFACE_MODULES = ("songbloom.api", "songbloom.config", "songbloom.eval")  # these modules only
PYTHON_M = ("songbloom.text", "songbloom.sketch", "songbloom.cli.preprocess")  # the modules with a __main__
MIGRATION = DOCS_DIR / "migration.md"
NOT_SURFACE = {"TYPE_CHECKING", "annotations"}

# Roots of dotted names the docs use for run-config blocks besides today's top-level keys: documented blocks that
# do not exist yet are still recorded (as missing), not silently dropped.
DOCUMENTED_ROOTS = {"preemption"}
# Dotted names in docs whose root is a config key but which name something else (a YAML field of another file).
FILE_SUFFIXES = {"yaml", "py", "md", "json", "jsonl", "ckpt", "pt", "sbatch", "npy", "safetensors", "txt", "wav", "sh"}
NOT_CONFIG_KEYS = {
    "model.attribute_dropout",  # the release YAML's model block (docs/training.md), not the run config
    "model.cfg_dropout",
    "meta.extra",
}


# ---------------------------------------------------------------------------------------------- python modules
def module_moves() -> dict[str, str]:
    """old -> new of the *removed* rows of docs/migration.md's "Module moves" (module paths and ``python -m``)."""
    text = MIGRATION.read_text(encoding="utf-8")
    section = text.split("## Module moves", 1)[1].split("\n## ", 1)[0] if "## Module moves" in text else ""
    moves = {}
    for line in section.splitlines():
        m = re.match(r"^\|\s*`([^`]+)`\s*\|\s*`([^`]+)`\s*\|\s*removed", line)
        if m:  # only modules that could not stay as an alias; the others still import at their old path
            moves[m.group(1)] = m.group(2)
    return moves


def surface_module_names() -> list[str]:
    names = list(SURFACE_MODULES)
    for pkg_name in SURFACE_PACKAGES:
        pkg = importlib.import_module(pkg_name)
        names.append(pkg_name)
        names += [m.name for m in pkgutil.walk_packages(pkg.__path__, prefix=pkg_name + ".")]
    return sorted(set(names))


def import_quietly(name: str) -> types.ModuleType:
    """Import ``name``; a DeprecationWarning (an old path re-exporting a moved module) is fine."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return importlib.import_module(name)


def public_names(mod: types.ModuleType) -> list[str]:
    if hasattr(mod, "__all__"):
        return sorted(mod.__all__)
    out = []
    for name, obj in vars(mod).items():
        if name.startswith("_") or name in NOT_SURFACE or isinstance(obj, types.ModuleType):
            continue
        origin = getattr(obj, "__module__", None)
        if isinstance(obj, type | types.FunctionType) or origin is not None:
            if not (isinstance(origin, str) and origin.split(".")[0] == "songbloom"):
                continue  # a third-party import, not our surface
        out.append(name)
    return sorted(out)


def record_modules() -> dict[str, list[str]]:
    return {name: public_names(import_quietly(name)) for name in surface_module_names()}


# ---------------------------------------------------------------------------------------------- command lines
def cli_commands() -> dict[str, tuple[str, str]]:
    """command label -> ("module" | "path", target)."""
    cmds = {f"python -m {m}": ("module", m) for m in PYTHON_M}
    scripts = REPO_ROOT / "scripts"
    for path in [*sorted(scripts.glob("*.py")), *sorted((scripts / "slurm").glob("*.py"))]:
        cmds[str(path.relative_to(REPO_ROOT))] = ("path", str(path))
    cmds["infer.py"] = ("path", str(REPO_ROOT / "infer.py"))
    cmds["train.py"] = ("path", str(REPO_ROOT / "train.py"))
    return cmds


def _run_help(kind: str, target: str, argv: list[str]) -> str:
    """Execute an entry point in this process with ``argv`` (ending in --help); its captured output."""
    buf = io.StringIO()
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    sys.argv = [target, *argv]
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                if kind == "module":
                    runpy.run_module(target, run_name="__main__", alter_sys=False)
                else:
                    runpy.run_path(target, run_name="__main__")
            except SystemExit as e:
                if e.code not in (0, None):
                    raise RuntimeError(f"{target} {' '.join(argv)} exited {e.code}:\n{buf.getvalue()}") from e
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
    return buf.getvalue()


_OPTION_LINE = re.compile(r"^\s+(-{1,2}[A-Za-z][\w-]*)")
_SUBCOMMANDS = re.compile(r"^\s+\{([\w,-]+)\}")


def parse_argparse_help(text: str) -> tuple[list[str], list[str]]:
    """(option strings, subcommand names) of an argparse ``--help`` text: option lines only, not the prose."""
    flags, subs = set(), []
    for line in text.splitlines():
        if _OPTION_LINE.match(line):
            for part in line.strip().split(", "):
                tok = part.split()[0] if part.split() else ""
                if re.fullmatch(r"-{1,2}[A-Za-z][\w-]*", tok):
                    flags.add(tok)
        m = _SUBCOMMANDS.match(line)
        if m and not subs:
            subs = m.group(1).split(",")
    return sorted(flags), subs


def parse_hydra_help(text: str) -> dict[str, list[str]]:
    """The ``== Config groups ==`` section of a Hydra app's ``--help``: group -> options."""
    groups: dict[str, list[str]] = {}
    head = "== Configuration groups =="
    section = text.split(head, 1)[1].split("==", 1)[0] if head in text else ""
    for line in section.splitlines():
        m = re.match(r"^([\w/]+): (.*)$", line.strip())
        if m:
            groups[m.group(1)] = sorted(o.strip() for o in m.group(2).split(",") if o.strip())
    return groups


def record_cli() -> dict:
    out: dict = {}
    for label, (kind, target) in cli_commands().items():
        text = _run_help(kind, target, ["--help"])
        if label == "train.py":
            out[label] = {"hydra_config_groups": parse_hydra_help(text)}
            continue
        flags, subs = parse_argparse_help(text)
        entry: dict = {"flags": flags}
        if subs:
            entry["subcommands"] = {s: parse_argparse_help(_run_help(kind, target, [s, "--help"]))[0] for s in subs}
        out[label] = entry
    return out


# ---------------------------------------------------------------------------------------------- config
def config_groups() -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for path in sorted(CONF_DIR.rglob("*.yaml")):
        rel = path.relative_to(CONF_DIR)
        if len(rel.parts) > 1:
            groups.setdefault("/".join(rel.parts[:-1]), []).append(path.stem)
    return groups


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose("train", overrides=overrides, return_hydra_config=True)


def has_key(cfg, dotted: str) -> bool:
    from omegaconf import DictConfig

    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return False
        node = node._get_node(part)
    return True


def _doc_snippets() -> list[tuple[str, str]]:
    """(doc file, text) of every inline code span and every fenced-block line of docs/*.md."""
    out = []
    for doc in sorted(DOCS_DIR.glob("*.md")):
        text = doc.read_text()
        fenced = re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.S)
        rest = re.sub(r"```[^\n]*\n.*?```", "", text, flags=re.S)
        out += [(doc.name, line) for block in fenced for line in block.splitlines()]
        out += [(doc.name, span) for span in re.findall(r"`([^`\n]+)`", rest)]
    return out


def documented_config(groups: dict[str, list[str]], top_keys: set[str]) -> dict:
    """Group options and dotted keys the docs name, as found in code spans and code blocks."""
    options: dict[str, set[str]] = {}
    keys: dict[str, set[str]] = {}
    additions: dict[str, set[str]] = {}
    roots = top_keys | DOCUMENTED_ROOTS | {g.split("/")[0] for g in groups}
    token = re.compile(r"(?<![\w./-])(\+{0,2})([a-z_]+(?:[./][a-z_0-9]+)*)(=[^\s`'\"]*)?")
    for doc, snippet in _doc_snippets():
        for m in token.finditer(snippet):
            plus, name, value = m.groups()
            value = value or ""
            if snippet[m.end():].startswith("("):
                continue  # a method call in a Python example (callbacks.append(...)), not a config key
            root = re.split(r"[./]", name)[0]
            if root not in roots or name in NOT_CONFIG_KEYS:
                continue
            if value and name in groups:
                opt = value[1:].rstrip(".,:;)")
                if re.fullmatch(r"[\w-]+", opt):
                    options.setdefault(f"{name}={opt}", set()).add(doc)
            elif "." in name and "/" not in name and name.rsplit(".", 1)[1] not in FILE_SUFFIXES:
                (additions if plus else keys).setdefault(name, set()).add(doc)
    return {
        "options": {k: sorted(v) for k, v in sorted(options.items())},
        "keys": {k: sorted(v) for k, v in sorted(keys.items())},
        "additions": {k: sorted(v) for k, v in sorted(additions.items())},
    }


def key_context(key: str, groups: dict[str, list[str]]) -> list[str] | None:
    """The overrides under which ``key`` exists: [] in the default config, else one experiment or one option of
    the key's own group; None when nothing composes it."""
    if has_key(compose([]), key):
        return []
    root = key.split(".")[0]
    candidates = [f"{root}={o}" for o in groups.get(root, [])]
    candidates += [f"experiment={e}" for e in groups["experiment"]]
    if root == "hydra":
        candidates += [f"hydra/{g.split('/', 1)[1]}={o}" for g, opts in groups.items() if g.startswith("hydra/")
                       for o in opts]
    for ov in candidates:
        if has_key(compose([ov]), key):
            return [ov]
    return None


def record_config() -> dict:
    groups = config_groups()
    top_keys = set(compose([]).keys())
    docs = documented_config(groups, top_keys)
    missing: dict[str, list[str]] = {}
    doc_options = {}
    for opt, where in docs["options"].items():
        group, name = opt.split("=", 1)
        if name in groups.get(group, []):
            doc_options[opt] = where
        else:
            missing[opt] = where
    doc_keys = {}
    for key, where in docs["keys"].items():
        ctx = key_context(key, groups)
        if ctx is None:
            missing[key] = where
        else:
            doc_keys[key] = {"with": ctx, "docs": where}
    return {
        "groups": groups,
        "documented_options": doc_options,
        "documented_keys": doc_keys,
        "documented_additions": docs["additions"],
        "documented_but_missing": dict(sorted(missing.items())),
    }


def record() -> dict:
    return {
        "_about": "Public surface before the restructuring (main at 57c9a6f); see tests/public_surface.py.",
        "modules": record_modules(),
        "cli": record_cli(),
        "config": record_config(),
    }


def main(argv: list[str]) -> int:
    if argv == ["cli"]:
        json.dump(record_cli(), sys.stdout)
        return 0
    if argv == ["write"]:
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(json.dumps(record(), indent=1, sort_keys=True) + "\n")
        print(f"wrote {SNAPSHOT}")
        return 0
    print("usage: python -m tests.public_surface {write|cli}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
