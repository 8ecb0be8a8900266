"""Read-only facts about the auth-state tables shared by the maintenance operations.

Maintenance commands run against a user's production database: they must not create tables
there (that is the store's job on open), so they check the tables exist and say so clearly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import asyncpg

from harness.authstate.errors import AuthStateError

TABLES = ("whatsapp_auth", "whatsapp_keys")


async def missing_tables(conn: asyncpg.Connection) -> list[str]:
    return [t for t in TABLES if await conn.fetchval("SELECT to_regclass($1)", t) is None]


async def require_tables(conn: asyncpg.Connection) -> None:
    """Raise `AuthStateError` naming the database when the auth-state tables are missing."""
    missing = await missing_tables(conn)
    if missing:
        where = await conn.fetchval("SELECT current_database() || ' (search_path: ' || "
                                    "current_setting('search_path') || ')'")
        raise AuthStateError(
            f"no {' or '.join(missing)} table in database {where}",
            hint="point --dsn at the database your Baileys service writes (or create the tables "
            "by opening the store once, e.g. with import-files)")


@dataclass(frozen=True)
class TableSizes:
    """Bytes on disk: `keys_total` (pg_total_relation_size) = `keys_table` (heap, TOAST, free
    space and visibility maps: pg_table_size) + `keys_indexes` (pg_indexes_size).

    DELETE does not shrink these: freed space is reused after (auto)vacuum, and only
    VACUUM FULL or pg_repack returns it to the operating system.
    """

    keys_total: int
    keys_table: int
    keys_indexes: int
    auth_total: int

    def to_json(self) -> dict[str, int]:
        return asdict(self)


async def table_sizes(conn: asyncpg.Connection) -> TableSizes:
    row = await conn.fetchrow(
        "SELECT pg_total_relation_size('whatsapp_keys'::regclass), "
        "pg_table_size('whatsapp_keys'::regclass), pg_indexes_size('whatsapp_keys'::regclass), "
        "pg_total_relation_size('whatsapp_auth'::regclass)")
    return TableSizes(*row)
