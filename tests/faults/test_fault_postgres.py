"""PostgreSQL through the fault proxy (asyncpg), driven by the fault helpers of `pg_proxy`.

Runs against whatever the provisioning chain gives (by default our server in a subprocess).
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from fixtures.faults import PgProxy
from harness.faults.client import NotFoundError

pytestmark = pytest.mark.timeout(60)

CONNECTION_BROKEN = (asyncpg.InterfaceError, asyncpg.PostgresConnectionError, OSError)


async def connect(dsn: str) -> asyncpg.Connection:
    return await asyncpg.connect(dsn, timeout=5)


async def test_queries_go_through_the_proxy(pg_proxy: PgProxy) -> None:
    conn = await connect(pg_proxy.dsn)
    try:
        assert await conn.fetchval("SELECT 40 + 2") == 42
        assert pg_proxy.dsn != pg_proxy.direct_dsn
        assert f":{pg_proxy.port}/" in pg_proxy.dsn
        stats = pg_proxy.client.connections(pg_proxy.name)
        assert len(stats) == 1 and stats[0]["downstream"]["received"] > 0
    finally:
        await conn.close()


async def test_sever_breaks_live_connections_and_refuses_new_ones(pg_proxy: PgProxy) -> None:
    live = await connect(pg_proxy.dsn)
    assert await live.fetchval("SELECT 1") == 1
    async with pg_proxy.faults.sever():
        with pytest.raises(CONNECTION_BROKEN):
            await asyncio.wait_for(live.fetchval("SELECT 1"), 5)
        with pytest.raises(ConnectionRefusedError):
            await connect(pg_proxy.dsn)
    again = await connect(pg_proxy.dsn)
    assert await again.fetchval("SELECT 1") == 1
    await again.close()
    [window] = pg_proxy.timeline.windows
    assert window.kind == "sever" and window.target == pg_proxy.name
    assert window.duration is not None and window.duration > 0


def test_sever_as_a_plain_context_manager(pg_proxy: PgProxy) -> None:
    with pg_proxy.faults.sever() as fault:
        assert fault.active
        assert pg_proxy.refresh().enabled is False
    assert pg_proxy.refresh().enabled is True
    assert not fault.active and pg_proxy.timeline.windows[0].cleared_at is not None


async def test_blackhole_hangs_queries_and_clearing_closes_them(pg_proxy: PgProxy) -> None:
    conn = await connect(pg_proxy.dsn)
    async with pg_proxy.faults.blackhole():
        query = asyncio.ensure_future(conn.fetchval("SELECT 1"))
        done, _ = await asyncio.wait([query], timeout=0.5)
        assert not done  # no answer, no error: the network just hangs
    with pytest.raises(CONNECTION_BROKEN):
        await asyncio.wait_for(query, 5)  # removing the timeout toxic closed the connection
    fresh = await connect(pg_proxy.dsn)
    assert await fresh.fetchval("SELECT 1") == 1
    await fresh.close()
    conn.terminate()


async def test_latency_slows_every_query(pg_proxy: PgProxy) -> None:
    conn = await connect(pg_proxy.dsn)
    try:
        async with pg_proxy.faults.latency(80, jitter=10):
            started = time.monotonic()
            await conn.fetchval("SELECT 1")
            assert time.monotonic() - started >= 0.070
        started = time.monotonic()
        await conn.fetchval("SELECT 1")
        assert time.monotonic() - started < 0.070
        assert pg_proxy.timeline.windows[0].params["latency_ms"] == 80
    finally:
        await conn.close()


async def test_reset_peers_resets_the_next_query(pg_proxy: PgProxy) -> None:
    conn = await connect(pg_proxy.dsn)
    async with pg_proxy.faults.reset_peers():
        with pytest.raises(CONNECTION_BROKEN):
            await asyncio.wait_for(conn.fetchval("SELECT 1"), 5)
    resets = [e for e in pg_proxy.events() if e.type == "connection_reset"]
    assert len(resets) == 1
    fresh = await connect(pg_proxy.dsn)
    assert await fresh.fetchval("SELECT 1") == 1
    await fresh.close()


async def test_limit_data_cuts_a_large_result(pg_proxy: PgProxy) -> None:
    conn = await connect(pg_proxy.dsn)
    async with pg_proxy.faults.limit_data(20_000):
        assert await conn.fetchval("SELECT 1") == 1  # small answers still pass
        with pytest.raises(CONNECTION_BROKEN):
            await asyncio.wait_for(conn.fetchval("SELECT repeat('x', 100000)"), 5)


async def test_bandwidth_slows_a_large_result(pg_proxy: PgProxy) -> None:
    conn = await connect(pg_proxy.dsn)
    try:
        async with pg_proxy.faults.bandwidth(200, stream="downstream"):
            started = time.monotonic()
            value = await conn.fetchval("SELECT repeat('x', 100000)")
            elapsed = time.monotonic() - started
        assert len(value) == 100_000
        assert 0.4 <= elapsed < 2.0  # ~100 KB at 200 KB/s
    finally:
        await conn.close()


async def test_flap_records_each_outage(pg_proxy: PgProxy) -> None:
    flap = pg_proxy.faults.flap(0.3, 3)
    outcomes: list[bool] = []
    async with flap:
        for _ in range(12):
            try:
                conn = await connect(pg_proxy.dsn)
                await conn.close()
                outcomes.append(True)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                outcomes.append(False)
            await asyncio.sleep(0.075)
        await flap.await_done()
    assert True in outcomes and False in outcomes
    windows = pg_proxy.timeline.windows
    assert [w.kind for w in windows] == ["flap"] * 3
    assert [w.params["cycle"] for w in windows] == [1, 2, 3]
    assert all(0.1 <= (w.duration or 0) < 1.0 for w in windows)
    assert pg_proxy.refresh().enabled is True


def test_background_flap_with_sync_helpers(pg_proxy: PgProxy) -> None:
    with pg_proxy.faults.flap(0.2, 2) as flap:
        flap.wait(5)
    assert len(pg_proxy.timeline.windows) == 2
    assert pg_proxy.refresh().enabled is True


def test_failed_injection_is_not_recorded(pg_proxy: PgProxy) -> None:
    from harness.faults.helpers import Faults

    ghost = Faults(pg_proxy.client, "no-such-proxy", pg_proxy.timeline)
    with pytest.raises(NotFoundError), ghost.latency(10):
        pass
    assert pg_proxy.timeline.windows == []


def test_clearing_tolerates_a_deleted_proxy(pg_proxy: PgProxy) -> None:
    with pg_proxy.faults.latency(10):
        pg_proxy.client.delete_proxy(pg_proxy.name)
    assert pg_proxy.timeline.windows[0].cleared_at is not None


async def test_server_events_line_up_with_the_timeline(pg_proxy: PgProxy) -> None:
    conn = await connect(pg_proxy.dsn)
    await conn.fetchval("SELECT 1")
    async with pg_proxy.faults.sever():
        pass
    events = {e.type: e for e in pg_proxy.events()}
    [window] = pg_proxy.timeline.windows
    disabled = events["proxy_disabled"]
    assert window.injected_at.monotonic <= disabled.monotonic <= window.cleared_at.monotonic
    closed = events["connection_closed"]
    assert closed.data["reason"] == "proxy disabled"
    assert closed.data["bytes"]["downstream"]["received"] > 0
    conn.terminate()
