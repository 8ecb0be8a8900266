"""A correct store the harness did not write (test data): the property suite must pass it.

It does everything its own way, as published stores do: one table of its own
(`auth_kv(company, key, value TEXT)`, `key` = `creds` or `<type>-<id>`), values as JSON text (so
a NUL or a lone surrogate in a string is kept exactly: the text holds its escape), any string
taken as a company id (a session name; kept apart from every other by an exact match), and
refusals in its own words: `TypeError("invalid company id null")` for an id that is not a string,
PostgreSQL's own `22021` for a NUL inside a company id. `delete_company` and `keys.clear()` delete
by exact match: the correct twin of tests/chaos/broken_targets/like_delete.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import asyncpg

from harness.authstate import codec
from harness.authstate.creds import init_auth_creds

SCHEMA = ("CREATE TABLE IF NOT EXISTS auth_kv (company text NOT NULL, key text NOT NULL, "
          "value text NOT NULL, PRIMARY KEY (company, key))")
UPSERT = ("INSERT INTO auth_kv (company, key, value) VALUES ($1, $2, $3) "
          "ON CONFLICT (company, key) DO UPDATE SET value = EXCLUDED.value")


def _company(company_id: object) -> str:
    if not isinstance(company_id, str):
        shown = json.dumps(company_id) if company_id is None or isinstance(company_id, int) \
            else type(company_id).__name__
        raise TypeError(f"invalid company id {shown}")
    return company_id


class ForeignStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def load(self, company_id: str) -> ForeignState:
        company = _company(company_id)
        text = await self.pool.fetchval(
            "SELECT value FROM auth_kv WHERE company = $1 AND key = 'creds'", company)
        return ForeignState(self, company,
                            codec.loads(text) if text is not None else init_auth_creds())

    async def delete_company(self, company_id: str) -> None:
        await self.pool.execute("DELETE FROM auth_kv WHERE company = $1", _company(company_id))

    async def close(self) -> None:
        await self.pool.close()


class ForeignKeys:
    def __init__(self, pool: asyncpg.Pool, company: str) -> None:
        self.pool, self.company = pool, company

    async def get(self, key_type: str, ids: Iterable[str]) -> dict[str, Any]:
        ids = list(ids)
        rows = await self.pool.fetch(
            "SELECT key, value FROM auth_kv WHERE company = $1 AND key = ANY($2::text[])",
            self.company, [f"{key_type}-{i}" for i in ids])
        found = {row["key"]: row["value"] for row in rows}
        return {i: codec.loads(found[k]) for i in ids if (k := f"{key_type}-{i}") in found}

    async def set(self, data: Mapping[str, Mapping[str, Any]]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            for key_type, entries in data.items():
                for key_id, value in entries.items():
                    if value:
                        await conn.execute(UPSERT, self.company, f"{key_type}-{key_id}",
                                           codec.dumps(value))
                    else:
                        await conn.execute("DELETE FROM auth_kv WHERE company = $1 AND key = $2",
                                           self.company, f"{key_type}-{key_id}")

    async def clear(self) -> None:
        await self.pool.execute("DELETE FROM auth_kv WHERE company = $1 AND key <> 'creds'",
                                self.company)


class ForeignState:
    def __init__(self, store: ForeignStore, company: str, creds: dict[str, Any]) -> None:
        self.pool, self.company, self.creds = store.pool, company, creds
        self.keys = ForeignKeys(store.pool, company)

    async def save_creds(self) -> None:
        await self.pool.execute(UPSERT, self.company, "creds", codec.dumps(self.creds))


async def open_store(dsn: str, *, cache_dir: Path) -> ForeignStore:
    """A correct store with its own schema and its own words (test data)."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    await pool.execute(SCHEMA)
    return ForeignStore(pool)
