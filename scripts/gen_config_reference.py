#!/usr/bin/env python
"""Write docs/configuration.md from conf/: every config group, option and key with its default and comment.

    python scripts/gen_config_reference.py            # rewrite docs/configuration.md
    python scripts/gen_config_reference.py --check    # exit 1 when the page is out of date (tests run this)

The comments in the YAML files are the documentation: a key's trailing ``# comment``, or the comment lines right
above it. Values are shown as written (interpolations such as ``${paths.root_dir}`` stay unresolved).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = REPO_ROOT / "conf"
OUT = REPO_ROOT / "docs" / "configuration.md"

HEADER = """# Configuration reference

<!-- Generated from conf/ by scripts/gen_config_reference.py: do not edit by hand (tests/docs fails when stale). -->

`python train.py` composes `conf/train.yaml` with one option per group (`model=tiny`, `lora=lm_all`, ...) and then
your `key=value` overrides. Experiments (`experiment=<name>`) are `@package _global_` files that pick group
options and set keys anywhere. Print the composed config of any command without running it with
`--cfg job`, e.g. `python train.py experiment=japanese_lora --cfg job`.

This page lists every group, option and key with the default as written in `conf/` and the comment next to
it. Regenerate it after changing `conf/`:

```bash
python scripts/gen_config_reference.py --check
```

(without `--check` it rewrites this page).
"""


@dataclass
class Entry:
    key: str
    value: str
    comment: str


def _split_comment(text: str) -> tuple[str, str]:
    """``value  # comment`` -> (value, comment); a ``#`` inside quotes or ``${...}`` is not a comment."""
    quote, depth = None, 0
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth = max(0, depth - 1)
        elif ch == "#" and depth == 0 and (i == 0 or text[i - 1].isspace()):
            return text[:i].strip(), text[i + 1 :].strip()
    return text.strip(), ""


def parse_yaml_entries(path: Path) -> tuple[str, list[Entry]]:
    """(file description, entries): the leading comment block, then one entry per key in file order."""
    description: list[str] = []
    entries: list[Entry] = []
    stack: list[tuple[int, str]] = []  # (indent, key) of the open mappings
    pending: list[str] = []
    seen_key = False
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.rstrip()
        stripped = line.strip()
        if not stripped:
            pending = []
            continue
        if stripped.startswith("#"):
            text = stripped.lstrip("#").strip()
            if text.startswith("@package"):
                continue
            (pending if seen_key else description).append(text)
            continue
        indent = len(line) - len(line.lstrip())
        if stripped.startswith("- "):  # a list item: part of the last key's value
            item, comment = _split_comment(stripped[2:])
            if entries:
                last = entries[-1]
                last.value = f"{last.value}, {item}" if last.value else item
                if comment:
                    last.comment = f"{last.comment} {item}: {comment}".strip()
            continue
        seen_key = True
        key, _, rest = stripped.partition(":")
        value, comment = _split_comment(rest)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        full = ".".join([k for _, k in stack] + [key.strip()])
        comment = comment or " ".join(pending)
        pending = []
        if value:
            entries.append(Entry(full, value, comment))
        else:
            stack.append((indent, key.strip()))
            entries.append(Entry(full, "", comment))
    # A mapping that received list items (defaults) keeps them; an empty mapping header with children is dropped.
    keys = [e.key for e in entries]
    kept = [
        e for i, e in enumerate(entries) if e.value or e.comment or not any(k.startswith(e.key + ".") for k in keys[i:])
    ]
    return _describe(description), kept


def _describe(lines: list[str]) -> str:
    """Comment lines -> markdown: prose joined into paragraphs, example commands kept in a text block."""
    out: list[str] = []
    prose: list[str] = []
    commands: list[str] = []
    for line in lines + [""]:
        continued = bool(commands) and commands[-1].endswith("\\")
        if line.startswith(("python ", "sbatch ")) or continued:
            if prose:
                out.append(" ".join(prose))
                prose = []
            commands.append(("    " if continued else "") + line)
            continue
        if commands:
            out.append("```text\n" + "\n".join(commands) + "\n```")
            commands = []
        if line:
            prose.append(line)
    if prose:
        out.append(" ".join(prose))
    return "\n\n".join(out)


def _cell(text: str) -> str:
    return text.replace("|", "\\|") if text else ""


def _table(entries: list[Entry]) -> list[str]:
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for e in entries:
        value = f"`{_cell(e.value)}`" if e.value else ""
        rows.append(f"| `{e.key}` | {value} | {_cell(e.comment)} |")
    return rows


def groups(conf_dir: Path) -> dict[str, list[Path]]:
    """``group name -> option files``, nested groups by path (``hydra/launcher``)."""
    out: dict[str, list[Path]] = {}
    for path in sorted(conf_dir.rglob("*.yaml")):
        rel = path.relative_to(conf_dir)
        if len(rel.parts) > 1:
            out.setdefault("/".join(rel.parts[:-1]), []).append(path)
    return out


def render(conf_dir: Path = CONF_DIR) -> str:
    lines = [HEADER]
    desc, entries = parse_yaml_entries(conf_dir / "train.yaml")
    lines += ["## `train.yaml`: the top level", "", desc, "", *_table(entries), ""]
    all_groups = groups(conf_dir)
    lines += ["## Groups", "", "| group | options |", "|---|---|"]
    for name, files in all_groups.items():
        links = ", ".join(f"[`{p.stem}`](#{name.replace('/', '')}{p.stem})" for p in files)
        lines.append(f"| `{name}` | {links} |")
    lines.append("")
    for name, files in all_groups.items():
        lines += [f"## Group `{name}`", ""]
        for path in files:
            desc, entries = parse_yaml_entries(path)
            lines += [f'<a id="{name.replace("/", "")}{path.stem}"></a>', "", f"### `{name}={path.stem}`", ""]
            lines += [f"`conf/{path.relative_to(conf_dir)}`" + (f": {desc}" if desc else ""), ""]
            lines += [*_table(entries), ""] if entries else ["(no keys)", ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Generate docs/configuration.md from conf/.")
    ap.add_argument("--check", action="store_true", help="exit 1 when docs/configuration.md is out of date")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.is_file() else ""
        if current != text:
            print(f"{args.out} is out of date: run python scripts/gen_config_reference.py", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
