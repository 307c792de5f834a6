"""The docs harness itself: extraction and the parse-only checks must catch what they are there to catch."""

from __future__ import annotations

from pathlib import Path

from tests.docs.doc_harness import (
    REPO_ROOT,
    compose_train_command,
    doc_commands,
    named_test_exists,
    parse_python_command,
    sandbox_env,
    untagged_command_fences,
)

PAGE = """# t

```bash
# a comment line
python scripts/convert_folder.py data/x \\
    --out m.jsonl   # trailing comment
python -m songbloom.text "a # not a comment"
```

```text
python not/a/command.py
```

```
python scripts/preprocess.py --help
```
"""


def test_extraction_joins_continuations_and_strips_comments(tmp_path: Path):
    page = tmp_path / "p.md"
    page.write_text(PAGE)
    cmds = doc_commands([page])
    assert [c.key for c in cmds] == [
        "python scripts/convert_folder.py data/x --out m.jsonl",
        'python -m songbloom.text "a # not a comment"',
    ]
    assert cmds[0].line == 5
    # The untagged fence holds a command: flagged; the text fence is not.
    bad = untagged_command_fences([page])
    assert len(bad) == 1 and "preprocess.py" in bad[0]


def test_parse_only_accepts_good_and_rejects_bad_arguments():
    assert parse_python_command("python scripts/convert_folder.py data/x --out m.jsonl --language ja") == ""
    assert "exit 2" in parse_python_command("python scripts/convert_folder.py data/x --out m.jsonl --bogus 1")
    assert "exit 2" in parse_python_command("python scripts/convert_folder.py data/x")  # --out is required
    assert "invalid choice" in parse_python_command("python -m songbloom.sketch train --num-codes 8 --out a "
                                                    "--work-dir w --manifest m --normalisation zzz")


def test_parse_only_never_runs_the_tool(tmp_path: Path):
    out = tmp_path / "never.jsonl"
    assert parse_python_command(f"python scripts/convert_folder.py {tmp_path} --out {out}") == ""
    assert not out.exists()


def test_compose_rejects_an_unknown_key(tmp_path: Path):
    env = sandbox_env(tmp_path)
    assert compose_train_command("python train.py experiment=japanese_lora lora.rank=4", REPO_ROOT, env) == ""
    assert "exit" in compose_train_command("python train.py experiment=japanese_lora lora.rnak=4", REPO_ROOT, env)


def test_named_test_exists():
    assert named_test_exists("tests/docs/test_doc_harness.py::test_named_test_exists")
    assert not named_test_exists("tests/docs/test_doc_harness.py::test_that_is_not_there")
    assert not named_test_exists("tests/nowhere.py::test_x")
