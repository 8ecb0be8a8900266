"""BROKEN ON PURPOSE: one table of `"<company>:<type>-<id>" -> JSON text`, as published stores keep
it, whose logout and `keys.clear()` delete with `LIKE '<company>:%'` and never escape the id.

`_` is LIKE's any-one-character wildcard, and company ids may contain it: logging out `a_b` also
deletes every key and the creds of `axb` (and `a-b`, `a0b` ...), whose owners did nothing.
Everything else is right: reads and writes use exact keys, values round-trip exactly (a NUL in a
string too: JSON text escapes it). The property suite's tenant-isolation checks must report
`cross-tenant`:

    python -m harness run --suite property \\
        --target tests/chaos/broken_targets/like_delete.py:open_store      # exits 1, cross-tenant
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import asyncpg

from harness.authstate import codec
from harness.authstate.creds import init_auth_creds

SCHEMA = "CREATE TABLE IF NOT EXISTS auth_kv (key text PRIMARY KEY, value text NOT NULL)"


class LikeDeleteStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def load(self, company_id: str) -> LikeDeleteState:
        text = await self.pool.fetchval("SELECT value FROM auth_kv WHERE key = $1",
                                        f"{company_id}:creds")
        return LikeDeleteState(self, company_id,
                               codec.loads(text) if text is not None else init_auth_creds())

    async def delete_company(self, company_id: str) -> None:
        # THE BUG: `_` in the id matches any character; should be an exact prefix match
        await self.pool.execute("DELETE FROM auth_kv WHERE key LIKE $1 || ':%'", company_id)

    async def close(self) -> None:
        await self.pool.close()


class LikeDeleteKeys:
    def __init__(self, store: LikeDeleteStore, company_id: str) -> None:
        self.pool, self.company_id = store.pool, company_id

    def _key(self, key_type: str, key_id: str) -> str:
        return f"{self.company_id}:{key_type}-{key_id}"

    async def get(self, key_type: str, ids: Iterable[str]) -> dict[str, Any]:
        ids = list(ids)
        rows = await self.pool.fetch("SELECT key, value FROM auth_kv WHERE key = ANY($1::text[])",
                                     [self._key(key_type, i) for i in ids])
        found = {row["key"]: row["value"] for row in rows}
        return {i: codec.loads(found[k]) for i in ids if (k := self._key(key_type, i)) in found}

    async def set(self, data: Mapping[str, Mapping[str, Any]]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            for key_type, entries in data.items():
                for key_id, value in entries.items():
                    key = self._key(key_type, key_id)
                    if value:
                        await conn.execute(
                            "INSERT INTO auth_kv (key, value) VALUES ($1, $2) ON CONFLICT (key) "
                            "DO UPDATE SET value = EXCLUDED.value", key, codec.dumps(value))
                    else:
                        await conn.execute("DELETE FROM auth_kv WHERE key = $1", key)

    async def clear(self) -> None:
        # THE BUG again: the company's keys by an unescaped LIKE pattern
        await self.pool.execute("DELETE FROM auth_kv WHERE key LIKE $1 || ':%' AND key <> "
                                "$1 || ':creds'", self.company_id)


class LikeDeleteState:
    def __init__(self, store: LikeDeleteStore, company_id: str, creds: dict[str, Any]) -> None:
        self.store, self.company_id, self.creds = store, company_id, creds
        self.keys = LikeDeleteKeys(store, company_id)

    async def save_creds(self) -> None:
        await self.store.pool.execute(
            "INSERT INTO auth_kv (key, value) VALUES ($1, $2) ON CONFLICT (key) "
            "DO UPDATE SET value = EXCLUDED.value", f"{self.company_id}:creds",
            codec.dumps(self.creds))


async def open_store(dsn: str, *, cache_dir: Path) -> LikeDeleteStore:
    """Deletes a company with an unescaped LIKE pattern (`a_b` takes `axb` along): caught as
    `cross-tenant`."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    await pool.execute(SCHEMA)
    return LikeDeleteStore(pool)
