"""A LOGIN role owning one scratch database: the identity a store under test connects as.

Faults on a role (CONNECTION LIMIT 0 -> 53300, default_transaction_read_only -> 25006,
pg_terminate_backend of its sessions) and grants are ignored by superusers, so a store whose
behaviour under them is tested must not connect as the superuser. The role owns the database
(or, on a server that gives us schemas only, the schema) so the store can create its tables,
gets a random password (servers with password auth), and is dropped afterwards with everything
it owns. Used by the chaos runner (the target's role) and by the store's own tests.

    async with login_role(admin_dsn, database_dsn) as role:
        store = await open_store(role.dsn)          # role.name, role.dsn (same database)
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from harness.dsn import database_of, with_database
from harness.errors import ProvisioningError

ROLE_PREFIX = "ah_app_"


class CannotCreateRole(ProvisioningError):
    """The admin DSN may not CREATE ROLE: what needs a role of its own cannot run here."""


@dataclass(frozen=True)
class LoginRole:
    name: str
    dsn: str  # the database's DSN, logged in as this role (password included: never log it)


def with_user(dsn: str, user: str, password: str | None) -> str:
    """The same DSN (host, port, database, parameters) logged in as another user."""
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    cred = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
    return urlunsplit(parts._replace(netloc=f"{cred}@{host}"))


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@contextlib.asynccontextmanager
async def login_role(admin_dsn: str, database_dsn: str) -> AsyncIterator[LoginRole]:
    """Create a LOGIN role owning the database of `database_dsn`; drop it on exit.

    `admin_dsn` is a superuser (or CREATEROLE) DSN on the same server. Without the right to
    create roles this raises `CannotCreateRole` (the chaos scenarios that need one then skip)."""
    name = f"{ROLE_PREFIX}{secrets.token_hex(6)}"
    password = secrets.token_urlsafe(18)
    database = database_of(database_dsn)
    conn = await asyncpg.connect(admin_dsn, timeout=15)
    try:
        try:
            await conn.execute(f"CREATE ROLE {quote_ident(name)} LOGIN PASSWORD "
                               f"'{password}' NOSUPERUSER NOCREATEDB NOCREATEROLE")
        except asyncpg.InsufficientPrivilegeError as exc:
            raise CannotCreateRole(
                f"cannot create a LOGIN role for the store under test ({exc})",
                hint="faults on the target's own role need a server where the harness may "
                "CREATE ROLE: run without --dsn (embedded PostgreSQL) or give the DSN's user "
                "CREATEROLE") from exc
        try:
            if "search_path=" in database_dsn:  # schema-isolated (no CREATEDB): own the schema
                schema = database_dsn.rsplit("search_path=", 1)[1].split("&", 1)[0]
                await conn.execute(f"GRANT {quote_ident(name)} TO CURRENT_USER")
                await conn.execute(f"ALTER SCHEMA {quote_ident(schema)} OWNER TO "
                                   f"{quote_ident(name)}")
            else:
                await conn.execute(f"ALTER DATABASE {quote_ident(database)} OWNER TO "
                                   f"{quote_ident(name)}")
        except BaseException:
            await _drop(admin_dsn, database_dsn, name)
            raise
    finally:
        await conn.close()
    try:
        yield LoginRole(name, with_user(database_dsn, name, password))
    finally:
        await _drop(admin_dsn, database_dsn, name)


async def _drop(admin_dsn: str, database_dsn: str, name: str) -> None:
    """End the role's sessions, hand what it owns back to the admin, drop it."""
    role = quote_ident(name)
    with contextlib.suppress(asyncpg.PostgresError, OSError):
        conn = await asyncpg.connect(with_database(admin_dsn, database_of(database_dsn)),
                                     timeout=15)
        try:
            await conn.execute(f"ALTER ROLE {role} CONNECTION LIMIT 0")
            await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE usename = $1", name)
            await conn.execute(f"REASSIGN OWNED BY {role} TO CURRENT_USER")
            await conn.execute(f"DROP OWNED BY {role}")
        finally:
            await conn.close()
    conn = await asyncpg.connect(admin_dsn, timeout=15)
    try:
        await conn.execute(f"DROP ROLE IF EXISTS {role}")
    finally:
        await conn.close()
