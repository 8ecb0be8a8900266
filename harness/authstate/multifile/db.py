"""The database side of export/import: a consistent snapshot to read, one transaction to write.

Kept beside the folder code rather than in `PostgresAuthStore` because it needs what the live
store deliberately does not offer: streaming every key of a company, and replacing a company's
whole state (creds + keys) in one transaction from already-encoded JSON text (an import of tens of
thousands of keys holds only the text, never the decoded values).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from harness.authstate.errors import StoreUnavailable
from harness.authstate.key_types import ttl_seconds
from harness.authstate.store import PostgresAuthStore

FETCH_BATCH = 1000  # rows per cursor round trip while streaming keys
WRITE_BATCH = 1000  # rows per multi-row upsert

DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError,
             TimeoutError)

_INSERT_KEYS = """
INSERT INTO whatsapp_keys AS k (company_id, key_type, key_id, value, updated_at, expires_at)
SELECT $1, t.key_type, t.key_id, t.value::jsonb, now(), now() + t.ttl * interval '1 second'
FROM unnest($2::text[], $3::text[], $4::text[], $5::int4[]) AS t(key_type, key_id, value, ttl)
ON CONFLICT (company_id, key_type, key_id) DO UPDATE
SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at, expires_at = EXCLUDED.expires_at
"""
_PUT_CREDS = """
INSERT INTO whatsapp_auth (company_id, creds, updated_at) VALUES ($1, $2::jsonb, now())
ON CONFLICT (company_id) DO UPDATE SET creds = EXCLUDED.creds, updated_at = EXCLUDED.updated_at
"""


def db_failure(operation: str, exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"{operation} failed: {type(exc).__name__}: {exc}",
                            hint="check that PostgreSQL is reachable and the DSN is right; "
                            "nothing was changed by this operation")


@asynccontextmanager
async def snapshot(store: PostgresAuthStore) -> AsyncIterator[asyncpg.Connection]:
    """A connection inside a REPEATABLE READ, READ ONLY transaction: one consistent view."""
    async with store.pool.acquire(timeout=store.acquire_timeout) as conn, conn.transaction(
            isolation="repeatable_read", readonly=True):
        yield conn


async def read_creds_text(conn: asyncpg.Connection, company_id: str, *,
                          query_timeout: float | None = None) -> str | None:
    return await conn.fetchval("SELECT creds::text FROM whatsapp_auth WHERE company_id = $1",
                               company_id, timeout=query_timeout)


async def iter_key_refs(conn: asyncpg.Connection, company_id: str, *,
                        query_timeout: float | None = None) -> AsyncIterator[tuple[str, str]]:
    """Every `(type, id)` of the company, sorted; streamed through a server-side cursor."""
    async for row in conn.cursor("SELECT key_type, key_id FROM whatsapp_keys "
                                 "WHERE company_id = $1 ORDER BY key_type, key_id",
                                 company_id, prefetch=FETCH_BATCH, timeout=query_timeout):
        yield row[0], row[1]


async def iter_key_values(
        conn: asyncpg.Connection, company_id: str, *,
        query_timeout: float | None = None) -> AsyncIterator[tuple[str, str, str]]:
    """Every `(type, id, stored JSON text)` of the company, sorted, streamed."""
    async for row in conn.cursor("SELECT key_type, key_id, value::text FROM whatsapp_keys "
                                 "WHERE company_id = $1 ORDER BY key_type, key_id",
                                 company_id, prefetch=FETCH_BATCH, timeout=query_timeout):
        yield row[0], row[1], row[2]


async def existing_state(conn: asyncpg.Connection, company_id: str, *,
                         query_timeout: float | None = None) -> tuple[bool, int]:
    """(has creds, number of keys) of the company."""
    has_creds = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM whatsapp_auth WHERE company_id = $1)", company_id,
        timeout=query_timeout)
    keys = await conn.fetchval("SELECT count(*) FROM whatsapp_keys WHERE company_id = $1",
                               company_id, timeout=query_timeout)
    return bool(has_creds), int(keys)


async def write_company_state(conn: asyncpg.Connection, company_id: str, creds_text: str,
                              rows: Sequence[tuple[str, str, str]], *, replace: bool,
                              query_timeout: float | None = None) -> None:
    """Inside the caller's transaction: optionally drop the company's keys, then write creds and
    `rows` of `(type, id, JSON text)` (sorted, so concurrent writers lock in the same order)."""
    if replace:
        await conn.execute("DELETE FROM whatsapp_keys WHERE company_id = $1", company_id,
                           timeout=query_timeout)
    await conn.execute(_PUT_CREDS, company_id, creds_text, timeout=query_timeout)
    for start in range(0, len(rows), WRITE_BATCH):
        chunk = rows[start:start + WRITE_BATCH]
        args: list[Any] = [[r[0] for r in chunk], [r[1] for r in chunk], [r[2] for r in chunk],
                           [ttl_seconds(r[0]) for r in chunk]]
        await conn.execute(_INSERT_KEYS, company_id, *args, timeout=query_timeout)
