"""Opening resilient stores in tests: every store opened here is closed after the test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from harness.authstate import ResilientAuthStore

OpenStore = Callable[..., Awaitable[ResilientAuthStore]]


@pytest.fixture
async def open_store(tmp_path: Path) -> AsyncIterator[OpenStore]:
    """`await open_store(dsn, cache_dir=None, **options)`; cache_dir defaults to one per call.
    Tests run with a 1 s operation deadline so a black hole costs seconds, not minutes."""
    opened: list[ResilientAuthStore] = []
    count = 0

    async def _open(dsn: str, cache_dir: Path | None = None,
                    **options: Any) -> ResilientAuthStore:
        nonlocal count
        count += 1
        options.setdefault("operation_deadline", 1.0)
        options.setdefault("connect_timeout", 0.5)
        store = await ResilientAuthStore.open(
            dsn, cache_dir=cache_dir or tmp_path / f"cache{count}", **options)
        opened.append(store)
        return store

    yield _open
    for store in reversed(opened):
        await store.close()
