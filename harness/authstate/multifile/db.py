"""The database side of export/import: a consistent snapshot to read, one transaction to write.

Kept beside the folder code rather than in `PostgresAuthStore` because it needs what the live
store deliberately does not offer: streaming every key of a company, and replacing a company's
whole state (creds + keys) in one transaction from already-encoded JSON text (an import of tens of
thousands of keys holds only the text, never the decoded values).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import asyncpg

from harness.authstate import store as store_module
from harness.authstate.errors import StoreUnavailable
from harness.authstate.store import PostgresAuthStore, PreparedKeyWrite

FETCH_BATCH = 1000  # rows per cursor round trip while streaming keys

DB_ERRORS = store_module.DB_ERRORS


def db_failure(operation: str, exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"{operation} failed: {type(exc).__name__}: {exc}",
                            hint="check that PostgreSQL is reachable and the DSN is right; "
                            "nothing was changed by this operation")


@asynccontextmanager
async def snapshot(store: PostgresAuthStore) -> AsyncIterator[asyncpg.Connection]:
    """A connection inside a REPEATABLE READ, READ ONLY transaction: one consistent view."""
    async with store.connection() as conn, conn.transaction(isolation="repeatable_read",
                                                            readonly=True):
        yield conn


async def read_creds_text(conn: asyncpg.Connection, company_id: str) -> str | None:
    return await conn.fetchval("SELECT creds::text FROM whatsapp_auth WHERE company_id = $1",
                               company_id)


async def iter_key_refs(conn: asyncpg.Connection,
                        company_id: str) -> AsyncIterator[tuple[str, str]]:
    """Every `(type, id)` of the company, sorted; streamed through a server-side cursor."""
    async for row in conn.cursor("SELECT key_type, key_id FROM whatsapp_keys "
                                 "WHERE company_id = $1 ORDER BY key_type, key_id",
                                 company_id, prefetch=FETCH_BATCH):
        yield row[0], row[1]


async def iter_key_values(conn: asyncpg.Connection,
                          company_id: str) -> AsyncIterator[tuple[str, str, str]]:
    """Every `(type, id, stored JSON text)` of the company, sorted, streamed."""
    async for row in conn.cursor("SELECT key_type, key_id, value::text FROM whatsapp_keys "
                                 "WHERE company_id = $1 ORDER BY key_type, key_id",
                                 company_id, prefetch=FETCH_BATCH):
        yield row[0], row[1], row[2]


async def existing_state(conn: asyncpg.Connection, company_id: str) -> tuple[bool, int]:
    """(has creds, number of keys) of the company."""
    has_creds = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM whatsapp_auth WHERE company_id = $1)", company_id)
    keys = await conn.fetchval("SELECT count(*) FROM whatsapp_keys WHERE company_id = $1",
                               company_id)
    return bool(has_creds), int(keys)


async def write_company_state(conn: asyncpg.Connection, company_id: str, creds_text: str,
                              rows: Sequence[tuple[str, str, str]], *, replace: bool) -> None:
    """Inside the caller's transaction: optionally drop the company's keys, then write creds and
    `rows` of `(type, id, JSON text)` (sorted, so concurrent writers lock in the same order)."""
    if replace:
        await conn.execute("DELETE FROM whatsapp_keys WHERE company_id = $1", company_id)
    await conn.execute(store_module.PUT_CREDS, company_id, creds_text)
    for sql, args in PreparedKeyWrite.from_rows(rows).statements(company_id):
        await conn.execute(sql, *args)
