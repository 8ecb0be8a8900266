"""Migrations on a live database: a complete schema costs no table lock; DDL never queues the
table's writers for longer than the lock timeout; the index is built CONCURRENTLY (writers go
on), and an INVALID leftover of a failed build is replaced."""

from __future__ import annotations

import asyncio
import logging
from time import monotonic

import asyncpg
import pytest

from harness.authstate import PostgresAuthStore, StoreUnavailable
from harness.authstate.schema import INDEX_NAME

ROWS = 50_000  # a large-ish origin table


async def _origin_table(db: asyncpg.Connection, *, with_columns: bool) -> None:
    """What the origin Node.js service created: no expires_at/updated_at (unless asked), no
    expiry index, ROWS keys."""
    extra = ", updated_at TIMESTAMPTZ NOT NULL DEFAULT now(), expires_at TIMESTAMPTZ" \
        if with_columns else ""
    await db.execute(f"""
        CREATE TABLE whatsapp_auth (company_id VARCHAR(50) PRIMARY KEY, creds JSONB NOT NULL
            {", updated_at TIMESTAMPTZ NOT NULL DEFAULT now()" if with_columns else ""});
        CREATE TABLE whatsapp_keys (company_id VARCHAR(50) NOT NULL, key_type VARCHAR(64) NOT NULL,
            key_id TEXT NOT NULL, value JSONB NOT NULL {extra},
            PRIMARY KEY (company_id, key_type, key_id));
        INSERT INTO whatsapp_keys (company_id, key_type, key_id, value)
        SELECT 'co' || (n % 100), 'session', n::text, '{{"v": 1}}'
        FROM generate_series(1, {ROWS}) n;
    """)


async def _origin_writes(dsn: str, stop: asyncio.Event, waits: list[float]) -> None:
    """The production service writing (origin-style single-row upserts) until `stop`."""
    conn = await asyncpg.connect(dsn)
    try:
        n = 0
        while not stop.is_set():
            started = monotonic()
            await conn.execute(
                "INSERT INTO whatsapp_keys (company_id, key_type, key_id, value) "
                "VALUES ('live', 'session', $1, '{}') ON CONFLICT (company_id, key_type, key_id) "
                "DO UPDATE SET value = EXCLUDED.value", str(n % 50))
            waits.append(monotonic() - started)
            n += 1
            await asyncio.sleep(0.005)
    finally:
        await conn.close()


async def test_a_complete_schema_takes_no_table_lock(pg_dsn, db) -> None:
    async with await PostgresAuthStore.open(pg_dsn):
        pass
    async with db.transaction():  # a reader holding ACCESS SHARE: ALTER TABLE would wait
        await db.execute("LOCK TABLE whatsapp_keys, whatsapp_auth IN ACCESS SHARE MODE")
        async with asyncio.timeout(20):
            async with await PostgresAuthStore.open(pg_dsn, migration_lock_timeout=0.2):
                pass


async def test_ddl_blocked_by_a_long_transaction_never_queues_writers_beyond_the_lock_timeout(
        pg_dsn, db, caplog) -> None:
    """A long transaction holds the table; the migration's ALTER TABLE waits for it, and every
    writer that comes later queues behind the ALTER. With lock_timeout the ALTER gives up (and
    retries) and the writers go on while the long transaction is still open."""
    await _origin_table(db, with_columns=False)
    blocker = await asyncpg.connect(pg_dsn)
    stop, waits = asyncio.Event(), []
    writer = asyncio.create_task(_origin_writes(pg_dsn, stop, waits))
    try:
        await blocker.execute("BEGIN; SELECT count(*) FROM whatsapp_keys")  # ACCESS SHARE held
        started = monotonic()
        async with asyncio.timeout(60):  # without lock_timeout this never ends: writers wait
            with pytest.raises(StoreUnavailable) as info:  # for the ALTER, the ALTER for us
                await PostgresAuthStore.open(pg_dsn, migration_lock_timeout=0.3)
        migration_s = monotonic() - started
        during = len(waits)
        await asyncio.sleep(0.2)
        assert len(waits) > during, "the writer is stuck"
        assert blocker.is_in_transaction()  # it all happened while the blocker held the table
    finally:
        stop.set()
        await writer
        await blocker.close()
    err = info.value
    assert err.retryable and err.sqlstate == "55P03"
    assert "lock_timeout 0.3 s in 5 attempts" in err.message and "--no-migrate" in err.hint
    # each attempt could hold writers up to the lock timeout, never for the whole migration
    print(f"migration gave up after {migration_s:.1f} s; writer: {len(waits)} writes, "
          f"longest {max(waits) * 1000:.0f} ms")
    assert max(waits) < migration_s / 2
    async with await PostgresAuthStore.open(pg_dsn) as store:  # the table is quiet now
        await store.set_keys("acme", {"pre-key": {"1": {"k": 1}, "2": None}})
    assert await db.fetchval("SELECT count(*) FROM whatsapp_keys WHERE expires_at IS NOT NULL") == 1


async def test_the_index_is_built_concurrently_and_an_invalid_leftover_rebuilt(
        pg_dsn, db, caplog) -> None:
    """An open writer transaction makes CREATE INDEX CONCURRENTLY wait for it (a plain CREATE
    INDEX would block every writer meanwhile). Writers go on; the build gives up at the lock
    timeout, leaving an INVALID index, and the store opens without it; once the transaction
    ends, the next open replaces the leftover with a valid index."""
    await _origin_table(db, with_columns=True)
    open_writer = await asyncpg.connect(pg_dsn)
    stop, waits = asyncio.Event(), []
    writer = asyncio.create_task(_origin_writes(pg_dsn, stop, waits))
    caplog.set_level(logging.WARNING, logger="harness.authstate.schema")
    try:
        await open_writer.execute("BEGIN; INSERT INTO whatsapp_keys (company_id, key_type, "
                                  "key_id, value) VALUES ('x', 'session', 'x', '{}')")
        async with asyncio.timeout(60):
            async with await PostgresAuthStore.open(pg_dsn, migration_lock_timeout=0.3) as store:
                await store.set_keys("acme", {"session": {"s": {"a": 1}}})
        during = len(waits)
        await asyncio.sleep(0.2)
        assert len(waits) > during and open_writer.is_in_transaction()
    finally:
        stop.set()
        await writer
        await open_writer.close()
    assert any("not built now" in r.getMessage() for r in caplog.records)
    valid = "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)"
    assert await db.fetchval(valid, INDEX_NAME) is False  # the failed build's leftover
    async with await PostgresAuthStore.open(pg_dsn):
        pass
    assert await db.fetchval(valid, INDEX_NAME) is True
    assert "(expires_at)" in await db.fetchval("SELECT indexdef FROM pg_indexes WHERE "
                                               "indexname = $1", INDEX_NAME)
    assert any("dropping the INVALID index" in r.getMessage() for r in caplog.records)
