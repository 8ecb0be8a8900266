"""SQL-level faults on one LOGIN role, made through a superuser connection.

What the target (connected as `role`) sees, verified in tests/chaos/test_nemeses.py:
- `terminate_backends`: every session of the role ends: a statement in flight fails with
  57P01 (asyncpg: ConnectionDoesNotExistError caused by AdminShutdownError), an idle pooled
  connection is dead at its next use.
- `set_connection_limit(role, 0)`: new connections are refused with 53300 ("too many
  connections for role"); existing ones are unaffected, hence terminate them too. -1 lifts it.
- `set_read_only(role, True)`: sessions started afterwards run every transaction read-only:
  writes fail with 25006, reads work. A session keeps the setting it started with, so both
  turning it on and off need the role's sessions ended to take effect everywhere.
Superusers ignore connection limits (and could turn read-only off), which is why the target
connects as its own role (harness/infra/postgres/roles.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import asyncpg

from harness.infra.postgres.roles import quote_ident

_TERMINATE = ("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
              "WHERE usename = $1 AND pid <> pg_backend_pid()")
# PG 14+: wait (up to $2 ms) until each terminated backend has exited.
_TERMINATE_AND_WAIT = ("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, $2)) "
                       "FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()")


async def connect_admin(admin_dsn: str) -> asyncpg.Connection:
    return await asyncpg.connect(admin_dsn, timeout=15, command_timeout=15,
                                 server_settings={"application_name": "authstate-nemesis"})


async def terminate_backends(conn: asyncpg.Connection, role: str, *,
                             wait_ms: int = 0) -> int:
    """End every session of `role`; with `wait_ms` > 0 also wait until they have exited (so no
    session started before this call can still run a statement). Returns how many."""
    if wait_ms > 0:
        try:
            return int(await conn.fetchval(_TERMINATE_AND_WAIT, role, wait_ms))
        except asyncpg.UndefinedFunctionError:  # before PostgreSQL 14: no waiting variant
            pass
    return int(await conn.fetchval(_TERMINATE, role))


async def sessions_of(conn: asyncpg.Connection, role: str) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", role))


async def set_connection_limit(conn: asyncpg.Connection, role: str, limit: int) -> None:
    """`limit` connections at most for `role` (0: none; -1: no limit)."""
    await conn.execute(f"ALTER ROLE {quote_ident(role)} CONNECTION LIMIT {int(limit)}")


async def connection_limit(conn: asyncpg.Connection, role: str) -> int:
    return int(await conn.fetchval("SELECT rolconnlimit FROM pg_roles WHERE rolname = $1",
                                   role))


async def set_read_only(conn: asyncpg.Connection, role: str, on: bool) -> None:
    """Role default `default_transaction_read_only` (applies to sessions started afterwards)."""
    if on:
        await conn.execute(f"ALTER ROLE {quote_ident(role)} SET default_transaction_read_only "
                           "= on")
    else:
        await conn.execute(f"ALTER ROLE {quote_ident(role)} RESET default_transaction_read_only")


async def role_settings(conn: asyncpg.Connection, role: str) -> list[str]:
    """The role's own settings (`ALTER ROLE ... SET`), e.g. ['default_transaction_read_only=on']."""
    rows = await conn.fetch(
        "SELECT unnest(s.setconfig) FROM pg_db_role_setting s JOIN pg_roles r "
        "ON r.oid = s.setrole WHERE r.rolname = $1", role)
    return [r[0] for r in rows]


class BackendTerminator:
    """Terminates every session of a role every `interval` seconds until stopped."""

    def __init__(self, admin_dsn: str, role: str, interval: float = 0.1) -> None:
        self.admin_dsn, self.role, self.interval = admin_dsn, role, interval
        self.rounds = 0
        self.terminated = 0
        self.errors = 0
        self._task: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None
        self._started = asyncio.Event()

    async def connect(self) -> None:
        """Open the admin session first, so the fault window starts when terminating does."""
        if self._conn is None:
            self._conn = await connect_admin(self.admin_dsn)

    async def start(self) -> None:
        """Return once the first round has terminated what was there."""
        await self.connect()
        conn, self._conn = self._conn, None
        assert conn is not None
        self._task = asyncio.get_running_loop().create_task(self._run(conn))
        first_round = asyncio.ensure_future(self._started.wait())
        try:
            await asyncio.wait({self._task, first_round}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            first_round.cancel()
        if self._task.done():
            self._task.result()  # raise what went wrong

    async def _run(self, conn: asyncpg.Connection) -> None:
        try:
            while True:
                began = time.monotonic()
                try:
                    self.terminated += await terminate_backends(conn, self.role)
                except asyncpg.PostgresError:
                    self.errors += 1
                self.rounds += 1
                self._started.set()
                await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - began)))
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(conn.close(timeout=5))

    async def stop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:  # connected but never started
            with contextlib.suppress(Exception):
                await asyncio.shield(conn.close(timeout=5))
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
