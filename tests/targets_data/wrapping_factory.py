"""Target factories for tests/test_targets.py: a team's own store, as the harness sees it.

`open_store` wraps the reference store (as a team's adapter would wrap theirs). With the env var
AUTHSTATE_TARGET_EVENTS set to a file path, it appends "opened" / "closed" lines there, so a test
running pytest in a subprocess can see that the `target` fixture closed the store.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from harness.authstate import PostgresAuthStore

NOT_CALLABLE = 42


def _event(line: str) -> None:
    path = os.environ.get("AUTHSTATE_TARGET_EVENTS")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


class WrappedStore:
    """Baileys' surface only: load and close (no optional hooks)."""

    def __init__(self, inner: PostgresAuthStore, cache_dir: Path) -> None:
        self._inner = inner
        self.cache_dir = cache_dir
        self.closed = False

    async def load(self, company_id: str) -> Any:
        return await self._inner.load(company_id)

    async def close(self) -> None:
        await self._inner.close()
        self.closed = True
        _event("closed")


async def open_store(dsn: str, *, cache_dir: Path) -> WrappedStore:
    """The reference store behind a thin adapter (test fixture data)."""
    store = WrappedStore(await PostgresAuthStore.open(dsn, max_size=2), cache_dir)
    _event("opened")
    return store


def open_store_sync(dsn: str, *, cache_dir: Path) -> Any:
    """A plain function returning the coroutine: also accepted."""
    return open_store(dsn, cache_dir=cache_dir)


class OnlyCloses:
    def __init__(self) -> None:
        self.closed = False

    async def close(self) -> None:
        self.closed = True


LAST_ONLY_CLOSES: list[OnlyCloses] = []


async def returns_only_close(dsn: str, *, cache_dir: Path) -> OnlyCloses:
    store = OnlyCloses()
    LAST_ONLY_CLOSES.append(store)
    return store


async def returns_a_dict(dsn: str, *, cache_dir: Path) -> dict[str, str]:
    return {"dsn": dsn}


async def wrong_signature(dsn: str) -> WrappedStore:
    raise AssertionError("never called: the signature is checked when resolved")


class _MemoryKeys:
    """keys.get/set answered from memory only: PostgreSQL never sees a key."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, str], Any] = {}

    async def get(self, key_type: str, ids: list[str]) -> dict[str, Any]:
        return {i: self.data[(key_type, i)] for i in ids if (key_type, i) in self.data}

    async def set(self, data: dict[str, dict[str, Any]]) -> None:
        for key_type, entries in data.items():
            for key_id, value in entries.items():
                self.data[(key_type, key_id)] = value


class ForgetfulStore(WrappedStore):
    """Creds go to PostgreSQL; keys stay in this instance's memory (a broken target)."""

    def __init__(self, inner: PostgresAuthStore, cache_dir: Path) -> None:
        super().__init__(inner, cache_dir)
        self.keys: dict[str, _MemoryKeys] = {}

    async def load(self, company_id: str) -> Any:
        state = await self._inner.load(company_id)
        state.keys = self.keys.setdefault(company_id, _MemoryKeys())
        return state


async def open_forgetful_store(dsn: str, *, cache_dir: Path) -> ForgetfulStore:
    return ForgetfulStore(await PostgresAuthStore.open(dsn, max_size=2), cache_dir)
