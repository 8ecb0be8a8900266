"""BROKEN ON PURPOSE: a key cache updated before the database write and kept when it fails.

Like Baileys' `makeCacheableSignalKeyStore`, `keys.set` puts the new values in its cache first,
then writes PostgreSQL; when that write fails the error is raised (the caller knows), but the
cache keeps the values. Reads answer from the cache when it has the key. So a read returns the
value of a write that definitely did not happen: the chaos checker must report `unexpected`
(Elle's aborted read).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.authstate import PostgresAuthStore

_DELETED = object()


def _is_js_falsy(value: Any) -> bool:
    return value is None or value is False or value == 0 or value == ""


class CacheBeforeDbStore:
    def __init__(self, inner: PostgresAuthStore) -> None:
        self.inner = inner
        self.cache: dict[tuple[str, str, str], Any] = {}  # (company, type, id) -> value

    async def load(self, company_id: str) -> CacheBeforeDbState:
        state = await self.inner.load(company_id)
        return CacheBeforeDbState(self, company_id, state)

    async def close(self) -> None:
        await self.inner.close()


class CacheBeforeDbKeys:
    def __init__(self, store: CacheBeforeDbStore, company_id: str) -> None:
        self.store, self.company_id = store, company_id

    async def get(self, key_type: str, ids: Iterable[str]) -> dict[str, Any]:
        cache, found, missing = self.store.cache, {}, []
        for key_id in ids:
            value = cache.get((self.company_id, key_type, key_id))
            if value is None:
                missing.append(key_id)
            elif value is not _DELETED:
                found[key_id] = value
        if missing:
            fetched = await self.store.inner.get_keys(self.company_id, key_type, missing)
            for key_id, value in fetched.items():
                cache[(self.company_id, key_type, key_id)] = value
            found.update(fetched)
        return found

    async def set(self, data: Mapping[str, Mapping[str, Any]]) -> None:
        for key_type, entries in data.items():  # THE BUG: cache first ...
            for key_id, value in entries.items():
                self.store.cache[(self.company_id, key_type, key_id)] = (
                    _DELETED if _is_js_falsy(value) else value)
        await self.store.inner.set_keys(self.company_id, data)  # ... and kept if this raises


class CacheBeforeDbState:
    def __init__(self, store: CacheBeforeDbStore, company_id: str, inner_state: Any) -> None:
        self._inner_state = inner_state
        self.creds = inner_state.creds
        self.keys = CacheBeforeDbKeys(store, company_id)

    async def save_creds(self) -> None:
        self._inner_state.creds = self.creds
        await self._inner_state.save_creds()


async def open_store(dsn: str, *, cache_dir: Path) -> CacheBeforeDbStore:
    """Caches keys before writing them and keeps them when the write fails: caught as
    `unexpected`."""
    return CacheBeforeDbStore(await PostgresAuthStore.open(dsn))
