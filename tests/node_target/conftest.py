"""Fixtures of the Node.js bridge tests: skip (saying how to enable) without Node.js >= 20.6."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from node_bridge_support import FAKE_DSN, PROBE, OpenProbe, require_node, sidecars

from harness.node_target.spec import open_node_target
from harness.node_target.target import NodeTarget


@pytest.fixture
def node() -> str:
    return require_node()


@pytest.fixture
async def open_probe(node: str, tmp_path: Path) -> AsyncIterator[OpenProbe]:
    """Open a module from tests/node_target/modules (no database); all closed after the test."""
    opened: list[NodeTarget] = []

    async def open_(module: Path = PROBE, export: str = "default") -> NodeTarget:
        target = await open_node_target(FAKE_DSN, cache_dir=tmp_path, module=module,
                                        export=export, deps_dir=None, label=module.name,
                                        migrate_schema=False)
        opened.append(target)
        return target

    yield open_
    for target in opened:
        await target.close()


@pytest.fixture(autouse=True)
def no_orphan_sidecars() -> Iterator[None]:
    """Every test of this directory leaves no sidecar of this process running."""
    yield
    left = sidecars(os.getpid())
    for proc in left:
        proc.kill()
    assert not left, f"sidecar processes left running: {[p.pid for p in left]}"
