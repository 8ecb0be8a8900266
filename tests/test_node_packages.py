"""The Baileys install cache behind the `baileys_node` fixture, with fake node/npm binaries:
one install reused, atomic and locked; an unreachable registry means skip, other failures fail."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fixtures.node_packages import (
    BAILEYS_VERSION,
    NodeUnavailable,
    install_baileys,
)

FAKE_NPM = """#!/bin/sh
echo run >> "$FAKE_NPM_LOG"
case "$FAKE_NPM_MODE" in
  offline) echo "npm error code ENOTFOUND" >&2; echo "npm error network request failed" >&2
           exit 1 ;;
  broken) echo "npm error code ERESOLVE" >&2; exit 1 ;;
esac
sleep 0.3  # long enough for a concurrent installer to queue on the lock
for last; do :; done
mkdir -p node_modules/@whiskeysockets/baileys
printf '{"version": "%s"}' "${last##*@}" > node_modules/@whiskeysockets/baileys/package.json
"""


@pytest.fixture
def fake_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("node", "#!/bin/sh\necho v20.11.0\n"), ("npm", FAKE_NPM)):
        path = bin_dir / name
        path.write_text(body)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "npm-runs.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_NPM_LOG", str(log))
    monkeypatch.delenv("FAKE_NPM_MODE", raising=False)
    return log


def _npm_runs(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_installs_once_then_reuses_the_cache(fake_node: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = install_baileys(root=cache)
    second = install_baileys(root=cache)
    assert first == second
    assert first.root == cache / f"baileys-{BAILEYS_VERSION}"
    assert (first.package_dir / "package.json").is_file()
    assert _npm_runs(fake_node) == 1
    assert sorted(p.name for p in cache.iterdir() if not p.name.endswith((".lock", ".log"))) == [
        first.root.name]  # no temporary directories left behind


def test_concurrent_installers_share_one_install(fake_node: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with ThreadPoolExecutor(max_workers=3) as pool:
        roots = list(pool.map(lambda _: install_baileys(root=cache).root, range(3)))
    assert len(set(roots)) == 1
    assert _npm_runs(fake_node) == 1


def test_a_partial_install_is_replaced(fake_node: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    stale = cache / f"baileys-{BAILEYS_VERSION}"
    (stale / "node_modules").mkdir(parents=True)  # no completion marker: an interrupted run
    packages = install_baileys(root=cache)
    assert (packages.package_dir / "package.json").is_file()
    assert _npm_runs(fake_node) == 1


def test_unreachable_registry_means_node_unavailable(fake_node: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_NPM_MODE", "offline")
    with pytest.raises(NodeUnavailable, match="could not reach the registry"):
        install_baileys(root=tmp_path / "cache")
    assert not (tmp_path / "cache" / f"baileys-{BAILEYS_VERSION}").exists()


def test_other_npm_failures_are_errors_not_skips(fake_node: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_NPM_MODE", "broken")
    with pytest.raises(RuntimeError, match="ERESOLVE"):
        install_baileys(root=tmp_path / "cache")


def test_old_node_is_unavailable(fake_node: Path, tmp_path: Path) -> None:
    node = fake_node.parent / "bin" / "node"
    node.write_text("#!/bin/sh\necho v18.19.0\n")
    with pytest.raises(NodeUnavailable, match="older than 20"):
        install_baileys(root=tmp_path / "cache")
