"""Schema of the origin system (`whatsapp_auth`, `whatsapp_keys`), created or migrated live-safe.

The tables match what an existing Node.js service writes, so the harness can run against such a
database: we only ever add what is missing (tables, `expires_at`/`updated_at` columns, an index)
and never drop or rewrite data. Concurrent openers are serialized by an advisory lock.

Live-safe, because the table may be a large production table that a service writes right now:
- Nothing is done that is not needed: the catalog is read first, and a complete schema costs no
  DDL and no table lock at all (`ALTER TABLE ... ADD COLUMN IF NOT EXISTS` takes an ACCESS
  EXCLUSIVE lock even when the column exists).
- Every DDL statement waits at most `lock_timeout` for its lock. A DDL statement waiting for a
  lock that a long transaction holds queues every later writer of the table behind it; with the
  bound, writers wait at most that long, then the migration gives up, backs off and retries
  (`attempts` times), then fails with an error saying so. Columns are added with constant
  defaults (metadata only since PostgreSQL 11: no table rewrite).
- The index is built with CREATE INDEX CONCURRENTLY, outside any transaction (writers go on while
  it builds). An INVALID index of that name left by a build that failed or was cancelled is
  dropped (concurrently) and built again, unless a build is in progress right now. The index
  only speeds up `cleanup`: when it cannot be built now, the migration logs how to build it by
  hand and succeeds.
- Behind a transaction pooler (`pooler="transaction"`) no session setting is used: the lock
  timeout is `SET LOCAL` in the DDL transaction; the index build runs without one (it takes no
  lock that blocks writers).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import asyncpg

from harness.authstate.errors import StoreRejected, StoreUnavailable

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_LOCK_KEY = 0x41555448  # "AUTH": pg_advisory_xact_lock key for migrations
_INDEX_LOCK_KEY = 0x41555449  # session-level advisory lock of index builders
DEFAULT_MIGRATION_LOCK_TIMEOUT_S = 1.0
"""Longest a DDL statement waits for its table lock (the longest a writer queues behind it)."""
DEFAULT_MIGRATION_ATTEMPTS = 5
_FIRST_BACKOFF_S = 0.5
INDEX_NAME = "whatsapp_keys_expires_at_idx"
CREATE_INDEX = (f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX_NAME} "
                "ON whatsapp_keys (expires_at)")
"""cleanup scans by expiry; the primary key already serves (company_id[, key_type]) lookups."""

_CREATE_AUTH = """CREATE TABLE IF NOT EXISTS whatsapp_auth (
    company_id VARCHAR(50) PRIMARY KEY,
    creds JSONB NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
)"""
_CREATE_KEYS = """CREATE TABLE IF NOT EXISTS whatsapp_keys (
    company_id VARCHAR(50) NOT NULL,
    key_type VARCHAR(64) NOT NULL,
    key_id TEXT NOT NULL,
    value JSONB NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ,
    PRIMARY KEY (company_id, key_type, key_id)
)"""
_CREATE_VERSION = """CREATE TABLE IF NOT EXISTS authstate_harness_schema (
    version INT PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)"""
# (table, column) -> the statement adding it; the store writes these columns
_COLUMNS = {
    ("whatsapp_auth", "updated_at"): "ALTER TABLE whatsapp_auth ADD COLUMN IF NOT EXISTS "
                                     "updated_at TIMESTAMPTZ NOT NULL DEFAULT now()",
    ("whatsapp_keys", "updated_at"): "ALTER TABLE whatsapp_keys ADD COLUMN IF NOT EXISTS "
                                     "updated_at TIMESTAMPTZ NOT NULL DEFAULT now()",
    ("whatsapp_keys", "expires_at"): "ALTER TABLE whatsapp_keys ADD COLUMN IF NOT EXISTS "
                                     "expires_at TIMESTAMPTZ",
}
_TABLES = {"whatsapp_auth": _CREATE_AUTH, "whatsapp_keys": _CREATE_KEYS,
           "authstate_harness_schema": _CREATE_VERSION}

_CATALOG = """
SELECT c.relname::text, a.attname::text
FROM pg_class c LEFT JOIN pg_attribute a
  ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.oid IN (to_regclass('whatsapp_auth'), to_regclass('whatsapp_keys'),
                to_regclass('authstate_harness_schema'))
"""
_INDEX_STATE = f"""
SELECT i.indisvalid,
       EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = i.indexrelid
               OR (p.relid = i.indrelid AND p.index_relid = 0)) AS building
FROM pg_index i WHERE i.indexrelid = to_regclass('{INDEX_NAME}')
"""
_UNIQUE_KEYS_SQL = """
SELECT count(*) FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
WHERE c.oid = 'whatsapp_keys'::regclass AND i.indisunique AND i.indnkeyatts = $1
  AND (SELECT array_agg(a.attname::text ORDER BY a.attname)
       FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum = ANY(i.indkey)) = $2::text[]
"""


@dataclass(frozen=True)
class SchemaGap:
    """Something the store needs that the database lacks, and the statement that adds it."""

    what: str
    fix: str


async def schema_gaps(conn: asyncpg.Connection) -> list[SchemaGap]:
    """What is missing (catalog reads only: no lock on the tables, nothing written)."""
    columns: dict[str, set[str]] = {}
    for table, column in await conn.fetch(_CATALOG):
        columns.setdefault(table, set()).add(column)
    gaps = [SchemaGap(f"table {table}", ddl) for table, ddl in _TABLES.items()
            if table not in columns]
    gaps += [SchemaGap(f"column {table}.{column}", ddl)
             for (table, column), ddl in _COLUMNS.items()
             if table in columns and column not in columns[table]]
    if "authstate_harness_schema" in columns and not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM authstate_harness_schema WHERE version = $1)",
            SCHEMA_VERSION):
        gaps.append(SchemaGap(f"schema version {SCHEMA_VERSION}",
                              "INSERT INTO authstate_harness_schema (version) VALUES "
                              f"({SCHEMA_VERSION}) ON CONFLICT DO NOTHING"))
    if "whatsapp_keys" in columns:
        row = await conn.fetchrow(_INDEX_STATE)
        if row is None or not (row["indisvalid"] or row["building"]):
            gaps.append(SchemaGap(f"index {INDEX_NAME}" + (" (INVALID)" if row else ""),
                                  CREATE_INDEX))
    return gaps


async def migrate(conn: asyncpg.Connection, *,
                  lock_timeout: float = DEFAULT_MIGRATION_LOCK_TIMEOUT_S,
                  attempts: int = DEFAULT_MIGRATION_ATTEMPTS,
                  pooler: str | None = None) -> None:
    """Create or complete the schema live-safe (module docstring); then check the uniqueness
    our upserts rely on. Raises `StoreUnavailable` when a table lock could not be had within
    `lock_timeout` in `attempts` tries (retryable: the blocking transaction will end)."""
    if not lock_timeout > 0:
        raise ValueError(f"lock_timeout must be above 0 s, got {lock_timeout}")
    gaps = await schema_gaps(conn)
    # Twice at most: the schema-version row is a gap only once its table exists, so a new
    # database needs a second pass (without it the row came on the next open, and a read-only
    # opener in between -- a durable reader -- found a gap it may not fill).
    for _ in range(2):
        if not any(not g.what.startswith("index ") for g in gaps):
            break
        await _retry_on_lock_timeout(lambda: _transactional_ddl(conn, lock_timeout),
                                     lock_timeout, attempts, "completing the tables")
        gaps = await schema_gaps(conn)
    if any(g.what.startswith("index ") for g in gaps):
        await _build_index(conn, lock_timeout, attempts, pooler)
    await check_compatible(conn)


async def _transactional_ddl(conn: asyncpg.Connection, lock_timeout: float) -> None:
    async with conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = {int(lock_timeout * 1000)}")
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        for gap in await schema_gaps(conn):  # again, under the lock: another opener may be done
            if not gap.what.startswith("index "):
                await conn.execute(gap.fix)


async def _build_index(conn: asyncpg.Connection, lock_timeout: float, attempts: int,
                       pooler: str | None) -> None:
    if conn.is_in_transaction():  # the caller's transaction: CONCURRENTLY is impossible there
        await conn.execute(CREATE_INDEX.replace(" CONCURRENTLY", ""))
        return
    # Directly connected, builders take a session-level advisory lock, so an INVALID index seen
    # under it is a leftover, never another opener's build in progress (two concurrent builds
    # also failed with "tuple concurrently updated"). Behind a transaction pooler a session lock
    # could outlive us on a shared server connection: builds are not serialized there, and a
    # failed one is judged by what the catalog shows afterwards.
    session = pooler is None

    async def build() -> None:
        if session:  # outside the try: unlocking a lock not taken only earns a warning
            await conn.execute("SELECT pg_advisory_lock($1)", _INDEX_LOCK_KEY)
        try:
            row = await conn.fetchrow(_INDEX_STATE)
            if row is not None and (row["indisvalid"] or row["building"]):
                return  # built, or being built right now
            if row is not None:  # an INVALID leftover of a failed or cancelled build
                log.warning("dropping the INVALID index %s left by an earlier build, to build "
                            "it again", INDEX_NAME)
                await conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX_NAME}")
            await conn.execute(CREATE_INDEX)
        finally:
            if session:
                await conn.execute("SELECT pg_advisory_unlock($1)", _INDEX_LOCK_KEY)

    if session:  # reset below: the pool does not reset sessions on release
        await conn.execute(f"SET lock_timeout = {int(lock_timeout * 1000)}")
    try:
        await _retry_on_lock_timeout(build, lock_timeout, attempts, f"building {INDEX_NAME}")
    except (StoreUnavailable, asyncpg.PostgresError) as exc:
        row = await conn.fetchrow(_INDEX_STATE)
        if row is None or not (row["indisvalid"] or row["building"]):
            log.warning("index %s not built now (%s); the store works without it, cleanup "
                        "scans slower. Build it by hand when convenient: %s", INDEX_NAME,
                        " ".join(str(exc).split()), CREATE_INDEX)
    finally:
        if session:
            await conn.execute("RESET lock_timeout")


async def _retry_on_lock_timeout(step, lock_timeout: float, attempts: int,  # type: ignore[no-untyped-def]
                                 what: str) -> None:
    backoff = _FIRST_BACKOFF_S
    for attempt in range(1, attempts + 1):
        try:
            await step()
            return
        except asyncpg.LockNotAvailableError:
            if attempt == attempts:
                break
            log.info("schema migration (%s): lock not granted within %g s (attempt %d of %d); "
                     "retrying in %.1f s", what, lock_timeout, attempt, attempts, backoff)
            await asyncio.sleep(backoff)
            backoff *= 2
    raise StoreUnavailable(
        f"creating the schema failed: {what} needs a table lock that was not granted within "
        f"lock_timeout {lock_timeout:g} s in {attempts} attempts (a long-running transaction "
        "or another migration holds a conflicting lock); writers of the table waited at most "
        f"{lock_timeout:g} s per attempt",
        hint="retry when the table is quiet (find the holder in pg_stat_activity / pg_locks), "
        "or open with migrate_schema=False (--no-migrate) and apply the DDL yourself "
        "(schema_gaps() lists it)", operation="creating the schema", sqlstate="55P03")


async def check_compatible(conn: asyncpg.Connection) -> None:
    """Upserts need a unique index on exactly (company_id, key_type, key_id)."""
    found = await conn.fetchval(_UNIQUE_KEYS_SQL, 3, ["company_id", "key_id", "key_type"])
    if not found:
        raise StoreRejected(
            "table whatsapp_keys has no PRIMARY KEY or UNIQUE constraint on "
            "(company_id, key_type, key_id), which batched upserts need",
            hint="add one: ALTER TABLE whatsapp_keys ADD CONSTRAINT whatsapp_keys_uk "
            "UNIQUE (company_id, key_type, key_id)", operation="checking the schema")
