"""BROKEN ON PURPOSE (test data): a store on the harness's tables whose logout deletes with
`company_id LIKE $1` (so `a_b` takes `axb`'s rows along), and whose reads are served from what
this instance wrote, so its own read API never shows the damage. Only the tenant checks' direct
read of PostgreSQL rows can see it: the test that proves that channel catches something.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import asyncpg

from harness.authstate import PostgresAuthStore
from harness.authstate.creds import init_auth_creds


class CachedLikeDeleteStore:
    def __init__(self, inner: PostgresAuthStore, dsn: str) -> None:
        self.inner, self.dsn = inner, dsn
        self.keys: dict[tuple[str, str, str], Any] = {}
        self.creds: dict[str, dict[str, Any]] = {}

    async def load(self, company_id: str) -> CachedState:
        if company_id not in self.creds:
            stored = await self.inner.read_creds(company_id)
            if stored is not None:
                self.creds[company_id] = stored
        creds = self.creds.get(company_id)
        return CachedState(self, company_id,
                           copy.deepcopy(creds) if creds is not None else init_auth_creds())

    async def delete_company(self, company_id: str) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:  # THE BUG: LIKE, unescaped
            await conn.execute("DELETE FROM whatsapp_keys WHERE company_id LIKE $1", company_id)
            await conn.execute("DELETE FROM whatsapp_auth WHERE company_id LIKE $1", company_id)
        finally:
            await conn.close()
        self.creds.pop(company_id, None)
        self.keys = {k: v for k, v in self.keys.items() if k[0] != company_id}

    async def close(self) -> None:
        await self.inner.close()


class CachedKeys:
    def __init__(self, store: CachedLikeDeleteStore, company_id: str) -> None:
        self.store, self.company_id = store, company_id

    async def get(self, key_type: str, ids: Iterable[str]) -> dict[str, Any]:
        ids = list(ids)
        cached = {i: v for i in ids if (v := self.store.keys.get((self.company_id, key_type, i)))
                  is not None}
        rest = [i for i in ids if (self.company_id, key_type, i) not in self.store.keys]
        return {**cached, **await self.store.inner.get_keys(self.company_id, key_type, rest)}

    async def set(self, data: Mapping[str, Mapping[str, Any]]) -> None:
        await self.store.inner.set_keys(self.company_id, data)
        for key_type, entries in data.items():
            for key_id, value in entries.items():
                self.store.keys[(self.company_id, key_type, key_id)] = value or None


class CachedState:
    def __init__(self, store: CachedLikeDeleteStore, company_id: str,
                 creds: dict[str, Any]) -> None:
        self.store, self.company_id, self.creds = store, company_id, creds
        self.keys = CachedKeys(store, company_id)

    async def save_creds(self) -> None:
        await self.store.inner.write_creds(self.company_id, self.creds)
        self.store.creds[self.company_id] = copy.deepcopy(self.creds)


async def open_store(dsn: str, *, cache_dir: Path) -> CachedLikeDeleteStore:
    """Deletes with LIKE on the harness's tables, reads from its own memory (test data)."""
    return CachedLikeDeleteStore(await PostgresAuthStore.open(dsn), dsn)
