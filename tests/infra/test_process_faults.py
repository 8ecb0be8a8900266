"""Process faults on the embedded PostgreSQL: crash (SIGKILL), fast shutdown, restart on the same
data, readiness measured by our own probe, and nothing left running afterwards."""

from __future__ import annotations

import asyncio
import socket
import time

import asyncpg
import pytest

from harness.infra.postgres.embedded import EmbeddedPostgres


def sqlstates(exc: BaseException | None) -> list[str]:
    """SQLSTATEs along the exception's cause chain (asyncpg wraps a FATAL that closes the
    connection in ConnectionDoesNotExistError, keeping the server's error as the cause)."""
    found = []
    while exc is not None:
        state = getattr(exc, "sqlstate", None)
        if state:
            found.append(state)
        exc = exc.__cause__ or exc.__context__
    return found


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((host, port)) != 0


def _assert_nothing_left(pg: EmbeddedPostgres) -> None:
    assert not pg.base_dir.exists()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and pg.processes():
        time.sleep(0.05)
    assert pg.processes() == []
    assert _port_free(pg.host, pg.port)


async def _fill(dsn: str, rows: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TABLE t(x int, pad text)")
        await conn.execute("INSERT INTO t SELECT g, repeat('x', 200) "
                           "FROM generate_series(1, $1::int) g", rows)
    finally:
        await conn.close()


async def _count(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM t"))
    finally:
        await conn.close()


async def test_sigkill_restart_keeps_committed_rows_and_measures_readiness() -> None:
    pg = EmbeddedPostgres().start()
    try:
        port = pg.port
        await _fill(pg.dsn, 1000)
        killed = pg.crash()
        assert not pg.is_running() and pg.processes() == []
        with pytest.raises(OSError):
            await asyncpg.connect(pg.dsn, timeout=2)
        pg.start(wait=False)
        ready = await pg.wait_accepting(within=60)
        assert pg.port == port and pg.pid != killed
        assert ready.ready_at >= ready.since and ready.attempts >= 1
        assert await _count(pg.dsn) == 1000
    finally:
        pg.close()
    _assert_nothing_left(pg)


async def test_crash_recovery_answers_57p03_until_redo_is_done() -> None:
    """Enough WAL since the last checkpoint that replaying it takes many probe intervals."""
    pg = EmbeddedPostgres().start()
    try:
        await _fill(pg.dsn, 200_000)
        pg.crash()
        pg.start(wait=False)
        ready = await pg.wait_accepting(within=120)
        assert ready.saw_recovery, ready.errors
        assert pg.last_redo_seconds() is not None
        assert await _count(pg.dsn) == 200_000
    finally:
        pg.close()
    _assert_nothing_left(pg)


async def test_backend_orphaned_by_sigkill_is_waited_for_then_killed() -> None:
    """A backend in a CPU loop never notices its postmaster died and keeps the shared memory;
    crash() kills it after the bound so the restart is not refused."""
    pg = EmbeddedPostgres().start()
    try:
        await _fill(pg.dsn, 10)
        conn = await asyncpg.connect(pg.dsn)
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        busy = asyncio.ensure_future(conn.execute("DO $$ BEGIN LOOP PERFORM 1; END LOOP; END $$"))
        await asyncio.sleep(0.2)
        pg.signal()
        await asyncio.sleep(0.2)
        assert backend in pg.processes()  # orphaned, still running
        waited = await asyncio.to_thread(pg.wait_stopped, 1.0)
        assert waited >= 1.0 and pg.processes() == []
        with pytest.raises((asyncpg.ConnectionDoesNotExistError, OSError)):
            await asyncio.wait_for(busy, 10)
        conn.terminate()
        pg.start(wait=False)
        await pg.wait_accepting(within=60)
        assert await _count(pg.dsn) == 10
    finally:
        pg.close()
    _assert_nothing_left(pg)


async def test_sigkill_drops_in_flight_statement_and_refuses_new_connections() -> None:
    pg = EmbeddedPostgres().start()
    try:
        conn = await asyncpg.connect(pg.dsn)
        sleeping = asyncio.ensure_future(conn.execute("SELECT pg_sleep(30)"))
        await asyncio.sleep(0.2)
        pg.crash()
        with pytest.raises((asyncpg.ConnectionDoesNotExistError, ConnectionError)):
            await asyncio.wait_for(sleeping, 10)
        with pytest.raises(ConnectionRefusedError):
            await asyncpg.connect(pg.dsn, timeout=2)
        conn.terminate()
    finally:
        pg.close()
    _assert_nothing_left(pg)


async def test_fast_shutdown_gives_57p01_then_start_on_same_data() -> None:
    pg = EmbeddedPostgres().start()
    try:
        await _fill(pg.dsn, 5)
        conn = await asyncpg.connect(pg.dsn)
        sleeping = asyncio.ensure_future(conn.execute("SELECT pg_sleep(30)"))
        await asyncio.sleep(0.2)
        await asyncio.to_thread(pg.stop, "fast")
        with pytest.raises(asyncpg.PostgresError) as err:
            await asyncio.wait_for(sleeping, 10)
        # asyncpg 0.32: ConnectionDoesNotExistError (08003) caused by the server's FATAL 57P01
        assert "57P01" in sqlstates(err.value)
        conn.terminate()
        pg.start(wait=False)
        ready = await pg.wait_accepting(within=60)
        assert not ready.saw_recovery or ready.errors["57P03"] >= 1
        assert pg.last_redo_seconds() is None  # a clean shutdown needs no redo
        assert await _count(pg.dsn) == 5
    finally:
        pg.close()
    _assert_nothing_left(pg)


def test_signal_refuses_a_server_that_is_not_running() -> None:
    from harness.errors import ProvisioningError

    pg = EmbeddedPostgres().start()
    try:
        pg.crash()
        with pytest.raises(ProvisioningError, match="not running"):
            pg.signal()
    finally:
        pg.close()
    _assert_nothing_left(pg)
