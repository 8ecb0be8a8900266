"""BROKEN ON PURPOSE: the origin system's behaviour while PostgreSQL is away.

On a database error, `keys.set` and `save_creds` return as if the data were saved (the write is
skipped, nothing is kept to replay it later), and `load()` falls back to an in-memory copy of
the creds it last read. Reads of keys still raise. Every write acknowledged during an outage is
therefore missing from PostgreSQL afterwards: the chaos checker must report `lost`.

    python -m harness run --suite chaos --scenario sever \\
        --target tests/chaos/broken_targets/drop_writes.py:open_store     # exits 1, names `lost`
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.authstate import PostgresAuthStore
from harness.authstate.creds import init_auth_creds
from harness.authstate.errors import StoreError


class DropWritesStore:
    def __init__(self, inner: PostgresAuthStore) -> None:
        self.inner = inner
        self.creds_cache: dict[str, dict[str, Any]] = {}

    async def load(self, company_id: str) -> DropWritesState:
        try:
            creds = await self.inner.read_creds(company_id)
        except StoreError:
            if company_id not in self.creds_cache:
                raise
            creds = copy.deepcopy(self.creds_cache[company_id])  # "cache mode"
        else:
            if creds is not None:
                self.creds_cache[company_id] = copy.deepcopy(creds)
        return DropWritesState(self, company_id, creds if creds is not None else init_auth_creds())

    async def close(self) -> None:
        await self.inner.close()


class DropWritesKeys:
    def __init__(self, store: DropWritesStore, company_id: str) -> None:
        self.store, self.company_id = store, company_id

    async def get(self, key_type: str, ids: Iterable[str]) -> dict[str, Any]:
        return await self.store.inner.get_keys(self.company_id, key_type, ids)

    async def set(self, data: Mapping[str, Mapping[str, Any]]) -> None:
        try:
            await self.store.inner.set_keys(self.company_id, data)
        except StoreError:
            pass  # THE BUG: skipped, yet reported as saved


class DropWritesState:
    def __init__(self, store: DropWritesStore, company_id: str, creds: dict[str, Any]) -> None:
        self.store, self.company_id, self.creds = store, company_id, creds
        self.keys = DropWritesKeys(store, company_id)

    async def save_creds(self) -> None:
        try:
            await self.store.inner.write_creds(self.company_id, self.creds)
        except StoreError:
            return  # THE BUG: skipped, yet reported as saved
        self.store.creds_cache[self.company_id] = copy.deepcopy(self.creds)


async def open_store(dsn: str, *, cache_dir: Path) -> DropWritesStore:
    """Drops writes while PostgreSQL is away (the origin system): caught as `lost`."""
    return DropWritesStore(await PostgresAuthStore.open(dsn))
