"""npm dependencies of a store module installed on first use, with a fake npm: once, atomically,
reused offline; none when the module finds its own node_modules; unreachable registry = skip."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from harness.node_target.errors import NodeInstallFailed, NodeUnavailable
from harness.node_target.npm_cache import ensure_dependencies

FAKE_NPM = """#!/bin/sh
echo "$1" >> "$FAKE_NPM_LOG"
case "$FAKE_NPM_MODE" in
  offline) echo "npm error code ENOTFOUND" >&2; exit 1 ;;
  broken) echo "npm error code ERESOLVE" >&2; exit 1 ;;
esac
mkdir -p node_modules/pg && echo '{"name": "pg"}' > node_modules/pg/package.json
"""


@pytest.fixture
def fake_npm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    npm = tmp_path / "bin" / "npm"
    npm.parent.mkdir()
    npm.write_text(FAKE_NPM)
    npm.chmod(npm.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{npm.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_NPM_LOG", str(tmp_path / "npm.log"))
    monkeypatch.setenv("AUTHSTATE_HARNESS_NODE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FAKE_NPM_MODE", raising=False)
    return tmp_path / "npm.log"


def store_package(root: Path, *, lock: bool = True) -> Path:
    root.mkdir(parents=True)
    (root / "package.json").write_text(json.dumps({"name": "s", "dependencies": {"pg": "^8"}}))
    if lock:
        (root / "package-lock.json").write_text("{}")
    module = root / "index.js"
    module.write_text("export default async () => {}\n")
    return module


def npm_runs(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def test_installs_once_with_npm_ci_then_reuses(fake_npm: Path, tmp_path: Path) -> None:
    module = store_package(tmp_path / "store")
    first = ensure_dependencies(module)
    assert first is not None and (first / "node_modules" / "pg" / "package.json").is_file()
    assert ensure_dependencies(module) == first
    assert npm_runs(fake_npm) == ["ci"]
    leftovers = [p.name for p in first.parent.iterdir()
                 if p.name.startswith(".")]  # temporary install directories
    assert leftovers == []
    assert not (tmp_path / "store" / "node_modules").exists(), "nothing written to the repo"


def test_without_a_lockfile_npm_install_is_used(fake_npm: Path, tmp_path: Path) -> None:
    ensure_dependencies(store_package(tmp_path / "store", lock=False))
    assert npm_runs(fake_npm) == ["install"]


def test_a_changed_package_json_gets_its_own_install(fake_npm: Path, tmp_path: Path) -> None:
    module = store_package(tmp_path / "store")
    first = ensure_dependencies(module)
    (tmp_path / "store" / "package.json").write_text(
        json.dumps({"name": "s", "dependencies": {"pg": "^8.16"}}))
    assert ensure_dependencies(module) != first
    assert npm_runs(fake_npm) == ["ci", "ci"]


def test_a_module_with_its_own_node_modules_installs_nothing(fake_npm: Path,
                                                              tmp_path: Path) -> None:
    module = store_package(tmp_path / "team" / "store")
    own = tmp_path / "team" / "node_modules" / "pg"  # a workspace root above the package
    own.mkdir(parents=True)
    (own / "package.json").write_text("{}")
    assert ensure_dependencies(module) is None
    assert npm_runs(fake_npm) == []


def test_unreachable_registry_is_node_unavailable(fake_npm: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_NPM_MODE", "offline")
    with pytest.raises(NodeUnavailable) as err:
        ensure_dependencies(store_package(tmp_path / "store"))
    assert "registry" in err.value.message and err.value.hint


def test_a_failed_install_is_an_error_naming_the_package(fake_npm: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_NPM_MODE", "broken")
    with pytest.raises(NodeInstallFailed, match="ERESOLVE"):
        ensure_dependencies(store_package(tmp_path / "store"))
    assert not any((tmp_path / "cache").glob("deps-*/.authstate-harness-complete"))
