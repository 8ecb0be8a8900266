"""`--target node:path[#export]`: what resolves, what is refused with a hint."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from node_bridge_support import MODULES, require_node

from harness.errors import ConfigError
from harness.node_target import spec as node_spec
from harness.node_target.errors import NodeUnavailable
from harness.targets import SPEC_FORMS, resolve_target


def test_spec_forms_mention_node() -> None:
    assert "node:" in SPEC_FORMS


def test_parse_defaults_to_the_default_export() -> None:
    assert node_spec.parse(f"node:{MODULES / 'probe.mjs'}") == (MODULES / "probe.mjs", "default")
    assert node_spec.parse(f"node:{MODULES / 'probe.mjs'}#useNamedProbe")[1] == "useNamedProbe"


def test_parse_finds_paths_relative_to_the_repository_root(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    module, _ = node_spec.parse("node:tests/node_target/modules/probe.mjs")
    assert module == MODULES / "probe.mjs"


@pytest.mark.parametrize(("spec", "says"), [
    ("node:", "names no module"),
    ("node:store.py", "not a .js"),
    ("node:no/such/store.js", "no such file"),
    (f"node:{MODULES / 'probe.mjs'}#not-a-name", "not a JavaScript export name"),
])
def test_bad_specs_are_refused_with_a_hint(spec: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as err:
        resolve_target(spec)
    assert err.value.hint


def test_resolves_to_a_target_spec_a_child_can_resolve_again() -> None:
    require_node()
    resolved = resolve_target(f"node:{MODULES / 'probe.mjs'}#useNamedProbe")
    assert resolved.spec == f"node:{MODULES / 'probe.mjs'}#useNamedProbe"
    assert resolved.name == "node:modules/probe.mjs#useNamedProbe"
    assert "sidecar" in resolved.description


def test_without_node_the_error_says_how_to_enable(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    node_spec.node_info.cache_clear()
    monkeypatch.setenv("PATH", str(tmp_path))
    try:
        with pytest.raises(NodeUnavailable) as err:
            resolve_target(f"node:{MODULES / 'probe.mjs'}")
        assert isinstance(err.value, ConfigError)
        assert "Node.js" in (err.value.hint or "")
    finally:
        monkeypatch.setenv("PATH", os.environ["PATH"])
        node_spec.node_info.cache_clear()


def test_database_env_from_a_dsn() -> None:
    env = node_spec.database_env("postgresql://u%40x:p%2Fw@db.local:6543/auth?sslmode=disable")
    assert env == {"DATABASE_URL": "postgresql://u%40x:p%2Fw@db.local:6543/auth?sslmode=disable",
                   "PGHOST": "db.local", "PGPORT": "6543", "PGUSER": "u@x", "PGPASSWORD": "p/w",
                   "PGDATABASE": "auth"}
