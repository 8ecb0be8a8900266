"""Schema of the origin system (`whatsapp_auth`, `whatsapp_keys`), created or migrated idempotently.

The tables match what an existing Node.js service writes, so the harness can run against such a
database: we only ever add what is missing (tables, `expires_at`/`updated_at` columns, indexes)
and never drop or rewrite data. Migrations run under an advisory lock, so many processes opening
the store at once is safe.
"""

from __future__ import annotations

import asyncpg

from harness.authstate.errors import StoreRejected

SCHEMA_VERSION = 1
_LOCK_KEY = 0x41555448  # "AUTH": pg_advisory_xact_lock key for migrations

_DDL_V1 = (
    """CREATE TABLE IF NOT EXISTS whatsapp_auth (
        company_id VARCHAR(50) PRIMARY KEY,
        creds JSONB NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )""",
    """CREATE TABLE IF NOT EXISTS whatsapp_keys (
        company_id VARCHAR(50) NOT NULL,
        key_type VARCHAR(64) NOT NULL,
        key_id TEXT NOT NULL,
        value JSONB NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        expires_at TIMESTAMPTZ,
        PRIMARY KEY (company_id, key_type, key_id)
    )""",
    "ALTER TABLE whatsapp_auth ADD COLUMN IF NOT EXISTS updated_at TIMESTAMPTZ NOT NULL "
    "DEFAULT now()",
    "ALTER TABLE whatsapp_keys ADD COLUMN IF NOT EXISTS updated_at TIMESTAMPTZ NOT NULL "
    "DEFAULT now()",
    "ALTER TABLE whatsapp_keys ADD COLUMN IF NOT EXISTS expires_at TIMESTAMPTZ",
    # cleanup scans by expiry; the primary key already serves (company_id[, key_type]) lookups
    "CREATE INDEX IF NOT EXISTS whatsapp_keys_expires_at_idx ON whatsapp_keys (expires_at)",
    """CREATE TABLE IF NOT EXISTS authstate_harness_schema (
        version INT PRIMARY KEY,
        applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )""",
)

_UNIQUE_KEYS_SQL = """
SELECT count(*) FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
WHERE c.oid = 'whatsapp_keys'::regclass AND i.indisunique AND i.indnkeyatts = $1
  AND (SELECT array_agg(a.attname::text ORDER BY a.attname)
       FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum = ANY(i.indkey)) = $2::text[]
"""


async def migrate(conn: asyncpg.Connection) -> None:
    """Create or complete the schema; then check the uniqueness our upserts rely on."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        for statement in _DDL_V1:
            await conn.execute(statement)
        await conn.execute(
            "INSERT INTO authstate_harness_schema (version) VALUES ($1) ON CONFLICT DO NOTHING",
            SCHEMA_VERSION)
    await check_compatible(conn)


async def check_compatible(conn: asyncpg.Connection) -> None:
    """Upserts need a unique index on exactly (company_id, key_type, key_id)."""
    found = await conn.fetchval(_UNIQUE_KEYS_SQL, 3, ["company_id", "key_id", "key_type"])
    if not found:
        raise StoreRejected(
            "table whatsapp_keys has no PRIMARY KEY or UNIQUE constraint on "
            "(company_id, key_type, key_id), which batched upserts need",
            hint="add one: ALTER TABLE whatsapp_keys ADD CONSTRAINT whatsapp_keys_uk "
            "UNIQUE (company_id, key_type, key_id)", operation="checking the schema")
