"""BROKEN ON PURPOSE: a key cache that trusts itself while PostgreSQL answers.

Reads are served from a local read-through cache whenever it holds the key (a TTL cache, as
Baileys' `makeCacheableSignalKeyStore` is often used), and writes update it after PostgreSQL
took them. Within one process that is coherent. With two processes serving the same companies
(a rolling deploy), a value this instance cached stays in its cache after the *other*
instance wrote a newer one: its reads go back in time. The `deploy-overlap` scenario must
report `stale-read`; single-process scenarios (sever) find nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.authstate import PostgresAuthStore

_ABSENT = object()


def _is_js_falsy(value: Any) -> bool:
    return value is None or value is False or value == 0 or value == ""


class StaleCacheStore:
    def __init__(self, inner: PostgresAuthStore) -> None:
        self.inner = inner
        self.cache: dict[tuple[str, str, str], Any] = {}

    async def load(self, company_id: str) -> StaleCacheState:
        return StaleCacheState(self, company_id, await self.inner.load(company_id))

    async def close(self) -> None:
        await self.inner.close()


class StaleCacheKeys:
    def __init__(self, store: StaleCacheStore, company_id: str) -> None:
        self.store, self.company_id = store, company_id

    async def get(self, key_type: str, ids: Iterable[str]) -> dict[str, Any]:
        cache, found, missing = self.store.cache, {}, []
        for key_id in ids:
            value = cache.get((self.company_id, key_type, key_id), None)
            if value is None:
                missing.append(key_id)
            elif value is not _ABSENT:
                found[key_id] = value  # THE BUG: never asks PostgreSQL again
        if missing:
            fetched = await self.store.inner.get_keys(self.company_id, key_type, missing)
            for key_id in missing:
                cache[(self.company_id, key_type, key_id)] = fetched.get(key_id, _ABSENT)
            found.update(fetched)
        return found

    async def set(self, data: Mapping[str, Mapping[str, Any]]) -> None:
        await self.store.inner.set_keys(self.company_id, data)
        for key_type, entries in data.items():
            for key_id, value in entries.items():
                self.store.cache[(self.company_id, key_type, key_id)] = (
                    _ABSENT if _is_js_falsy(value) else value)


class StaleCacheState:
    def __init__(self, store: StaleCacheStore, company_id: str, inner_state: Any) -> None:
        self._inner_state = inner_state
        self.creds = inner_state.creds
        self.keys = StaleCacheKeys(store, company_id)

    async def save_creds(self) -> None:
        self._inner_state.creds = self.creds
        await self._inner_state.save_creds()


async def open_store(dsn: str, *, cache_dir: Path) -> StaleCacheStore:
    """Serves cached keys even while PostgreSQL answers: `stale-read` with two instances."""
    return StaleCacheStore(await PostgresAuthStore.open(dsn))
