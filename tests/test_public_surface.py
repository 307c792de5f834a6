"""Today's public surface still works: every name, flag, config group option and documented config key recorded
in ``tests/fixtures/public_surface.json`` (before the restructuring; see ``tests/public_surface.py``) is still there.

Moved modules may keep their old import path as a re-export that warns with a DeprecationWarning: that is allowed.
A name, flag or key that is gone fails the test; new ones are fine (record them with
``PYTHONPATH=. python -m tests.public_surface write`` only when the snapshot should grow).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.public_surface import REPO_ROOT, SNAPSHOT, compose, has_key, import_quietly, module_moves

SURFACE = json.loads(SNAPSHOT.read_text())
MOVES = module_moves()  # docs/migration.md "Module moves": a moved module's names must be at its new path


@pytest.mark.parametrize("module", sorted(SURFACE["modules"]))
def test_module_keeps_its_public_names(module: str):
    where = MOVES.get(module, module)
    mod = import_quietly(where)
    missing = [name for name in SURFACE["modules"][module] if not hasattr(mod, name)]
    assert not missing, f"{module} lost public names: {missing}" + (f" (moved to {where})" if where != module else "")


@pytest.fixture(scope="module")
def cli_now() -> dict:
    """Every entry file run with --help, all in one subprocess (one interpreter start instead of one per command)."""
    proc = subprocess.run(
        [sys.executable, "-m", "tests.public_surface", "cli"],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    return json.loads(proc.stdout)


@pytest.mark.parametrize("command", sorted(SURFACE["cli"]))
def test_command_keeps_its_flags(cli_now: dict, command: str):
    command_now = MOVES.get(command, command)
    assert command_now in cli_now, f"{command} is no longer an entry point"
    then, now = SURFACE["cli"][command], cli_now[command_now]
    if "hydra_config_groups" in then:
        for group, options in then["hydra_config_groups"].items():
            lost = sorted(set(options) - set(now["hydra_config_groups"].get(group, [])))
            assert not lost, f"{command}: config group {group} lost options {lost}"
        return
    lost = sorted(set(then["flags"]) - set(now["flags"]))
    assert not lost, f"{command} lost flags {lost}"
    for sub, flags in then.get("subcommands", {}).items():
        assert sub in now.get("subcommands", {}), f"{command}: subcommand {sub} is gone"
        lost = sorted(set(flags) - set(now["subcommands"][sub]))
        assert not lost, f"{command} {sub} lost flags {lost}"


GROUP_OPTIONS = sorted(f"{g}={o}" for g, opts in SURFACE["config"]["groups"].items() for o in opts)


@pytest.mark.parametrize("override", GROUP_OPTIONS)
def test_config_group_option_composes(override: str):
    cfg = compose([override])
    group, option = override.split("=", 1)
    assert cfg.hydra.runtime.choices[group] == option


def test_documented_group_options_are_recorded_group_options():
    assert set(SURFACE["config"]["documented_options"]) <= set(GROUP_OPTIONS)


def _keys_by_context() -> dict[tuple[str, ...], list[str]]:
    out: dict[tuple[str, ...], list[str]] = {}
    for key, entry in SURFACE["config"]["documented_keys"].items():
        out.setdefault(tuple(entry["with"]), []).append(key)
    return out


KEY_GROUPS = sorted(_keys_by_context().items())


@pytest.mark.parametrize(("context", "keys"), KEY_GROUPS, ids=[" ".join(c) or "default" for c, _ in KEY_GROUPS])
def test_documented_keys_exist(context: tuple[str, ...], keys: list[str]):
    cfg = compose(list(context))
    missing = [k for k in keys if not has_key(cfg, k)]
    assert not missing, f"documented config keys no longer compose (with {list(context)}): {missing}"
