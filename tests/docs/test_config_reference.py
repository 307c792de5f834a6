"""docs/configuration.md is generated from conf/ and must match it: every group, option and key."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from omegaconf import DictConfig, ListConfig, OmegaConf

REPO_ROOT = Path(__file__).resolve().parents[2]
CONF = REPO_ROOT / "conf"


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location("gen_config_reference", REPO_ROOT / "scripts/gen_config_reference.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _leaves(node, prefix: str = "") -> set[str]:
    if isinstance(node, DictConfig):
        out: set[str] = set()
        for key in node.keys():
            if not prefix and key == "defaults":
                continue
            child = node._get_node(key)
            path = f"{prefix}{key}"
            if isinstance(child, DictConfig) and len(child) > 0:
                out |= _leaves(child, path + ".")
            else:
                out.add(path)
        return out
    return {prefix.rstrip(".")}


def test_configuration_page_is_up_to_date(gen):
    page = REPO_ROOT / "docs" / "configuration.md"
    assert page.read_text(encoding="utf-8") == gen.render(), (
        "docs/configuration.md is out of date with conf/: run `python scripts/gen_config_reference.py`"
    )


@pytest.mark.parametrize("path", sorted(CONF.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONF)))
def test_every_key_of_every_file_is_listed(gen, path: Path):
    _, entries = gen.parse_yaml_entries(path)
    listed = {e.key for e in entries}
    loaded = OmegaConf.load(path)
    assert not isinstance(loaded, ListConfig)
    missing = _leaves(loaded) - listed
    assert not missing, f"{path}: keys the reference generator missed: {sorted(missing)}"
    assert f"conf/{path.relative_to(CONF)}" in gen.render()


def test_check_mode_fails_on_a_stale_page(gen, tmp_path: Path):
    stale = tmp_path / "configuration.md"
    stale.write_text("old\n", encoding="utf-8")
    assert gen.main(["--check", "--out", str(stale)]) == 1
    assert gen.main(["--out", str(stale)]) == 0
    assert gen.main(["--check", "--out", str(stale)]) == 0
