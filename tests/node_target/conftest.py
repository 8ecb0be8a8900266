"""Fixtures of the Node.js bridge tests: skip (saying how to enable) without Node.js >= 20.6."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from node_bridge_support import FAKE_DSN, PROBE, OpenProbe, require_node

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
