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

from harness.authstate import sql
from harness.authstate.db_errors import DB_ERRORS, classify
from harness.authstate.errors import StoreError
from harness.authstate.store import PostgresAuthStore, PreparedKeyWrite

__all__ = ["DB_ERRORS", "db_failure", "existing_state", "iter_key_refs", "iter_key_values",
           "read_creds_text", "snapshot", "write_company_state"]

FETCH_BATCH = 1000  # rows per cursor round trip while streaming keys


def db_failure(operation: str, company_id: str, exc: BaseException, *,
               writes: bool) -> StoreError:
    """The store's error model for an export (`writes=False`: a read-only snapshot, nothing
    can change) or an import (`writes=True`: a connection lost while committing leaves the
    outcome unknown)."""
    return classify(exc, operation=operation, company_id=company_id, sent=writes)


@asynccontextmanager
async def snapshot(store: PostgresAuthStore) -> AsyncIterator[asyncpg.Connection]:
    """A connection inside a REPEATABLE READ, READ ONLY transaction: one consistent view."""
    async with store.connection() as conn, conn.transaction(isolation="repeatable_read",
                                                            readonly=True):
        yield conn


async def read_creds_text(conn: asyncpg.Connection, company_id: str) -> str | None:
    return await conn.fetchval(sql.GET_CREDS, company_id)


async def iter_key_refs(conn: asyncpg.Connection,
                        company_id: str) -> AsyncIterator[tuple[str, str]]:
    """Every `(type, id)` of the company, sorted; streamed through a server-side cursor."""
    async for row in conn.cursor(sql.KEY_REFS, company_id, prefetch=FETCH_BATCH):
        yield row[0], row[1]


async def iter_key_values(conn: asyncpg.Connection,
                          company_id: str) -> AsyncIterator[tuple[str, str, str]]:
    """Every `(type, id, stored JSON text)` of the company, sorted, streamed."""
    async for row in conn.cursor(sql.KEY_VALUES, company_id, prefetch=FETCH_BATCH):
        yield row[0], row[1], row[2]


async def existing_state(conn: asyncpg.Connection, company_id: str) -> tuple[bool, int]:
    """(has creds, number of keys) of the company."""
    has_creds = await conn.fetchval(sql.HAS_CREDS, company_id)
    keys = await conn.fetchval(sql.COUNT_KEYS, company_id)
    return bool(has_creds), int(keys)


async def write_company_state(conn: asyncpg.Connection, company_id: str, creds_text: str,
                              rows: Sequence[tuple[str, str, str]], *, replace: bool) -> None:
    """Inside the caller's transaction: optionally drop the company's keys, then write creds and
    `rows` of `(type, id, JSON text)` (sorted, so concurrent writers lock in the same order)."""
    await conn.execute(sql.LOCK_COMPANY, sql.lock_key(company_id))  # before any delete
    if replace:
        await conn.execute(sql.CLEAR_KEYS, company_id)
    await conn.execute(sql.PUT_CREDS, company_id, creds_text)
    for query, args in PreparedKeyWrite.from_rows(rows).statements(company_id):
        await conn.execute(query, *args)
