"""Bounded time: every operation ends within `operation_deadline` (lock wait, acquire, every
statement), a timed-out connection is never reused, `close()` returns under a black hole, and
every pooled socket has TCP keepalive. Real PostgreSQL behind the real fault proxy.

Time bounds are loose on purpose (deadline + 2 s): they tell "bounded by the deadline" from
"hung for the 35 s a query used to wait", not how fast a busy machine is.
"""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from harness.authstate import PostgresAuthStore, StoreTimeout, TcpKeepalive
from harness.errors import ConfigError

DEADLINE = 1.0
SLACK = 2.0  # scheduling on a loaded 2-core machine; far below any unbounded wait
PRE_KEY = {"public": bytes(range(32)), "private": bytes(range(32, 64))}


async def _server_pid(store: PostgresAuthStore) -> int:
    async with store.connection() as conn:
        return conn.get_server_pid()


async def test_black_holed_write_times_out_at_the_deadline_as_unknown_then_close_returns(
        pg_proxy, db) -> None:
    store = await PostgresAuthStore.open(pg_proxy.dsn, operation_deadline=DEADLINE)
    closed = False
    try:
        await store.set_keys("acme", {"session": {"s": {"n": 0}}})
        async with pg_proxy.faults.blackhole():
            started = time.monotonic()
            with pytest.raises(StoreTimeout) as err:
                await store.set_keys("acme", {"session": {"s": {"n": 1}}})
            took = time.monotonic() - started
            assert err.value.outcome == "unknown"  # sent, then silence: may have committed
            assert err.value.retryable and err.value.waited_s is not None
            assert DEADLINE * 0.9 <= err.value.waited_s < DEADLINE + SLACK
            assert took < DEADLINE + SLACK
            assert f"timed out after {err.value.waited_s:.2f} s" in err.value.message
            assert "may have been applied" in err.value.hint
            started = time.monotonic()
            await store.close()
            closed = True
            assert time.monotonic() - started < DEADLINE + SLACK
    finally:
        if not closed:
            await store.close()


async def test_black_holed_read_times_out_as_failed(pg_proxy) -> None:
    store = await PostgresAuthStore.open(pg_proxy.dsn, operation_deadline=DEADLINE)
    try:
        await store.set_keys("acme", {"pre-key": {"1": PRE_KEY}})
        async with pg_proxy.faults.blackhole():
            with pytest.raises(StoreTimeout) as err:
                await store.get_keys("acme", "pre-key", ["1"])
        assert err.value.outcome == "failed" and "PostgreSQL's answer" in err.value.message
        assert err.value.waited_s < DEADLINE + SLACK
    finally:
        await store.close()


async def test_connecting_into_a_black_hole_is_bounded_too(pg_proxy) -> None:
    async with pg_proxy.faults.blackhole():
        store = await PostgresAuthStore.create(pg_proxy.dsn, operation_deadline=DEADLINE,
                                               connect_timeout=DEADLINE / 2)
        try:
            with pytest.raises(StoreTimeout) as err:
                await store.set_keys("acme", {"pre-key": {"1": PRE_KEY}})
            assert err.value.outcome == "failed"  # never connected: nothing was sent
            assert "a connection to PostgreSQL" in err.value.message
            assert err.value.waited_s < DEADLINE + SLACK
            with pytest.raises(StoreTimeout) as opening:  # open() gives up at connect_timeout
                await PostgresAuthStore.open(pg_proxy.dsn, operation_deadline=DEADLINE,
                                             connect_timeout=DEADLINE / 2)
            assert opening.value.waited_s < DEADLINE / 2 + SLACK
        finally:
            await store.close()


async def test_a_timed_out_connection_is_never_reused(pg_proxy) -> None:
    store = await PostgresAuthStore.open(pg_proxy.dsn, min_size=1, max_size=1,
                                         operation_deadline=DEADLINE)
    try:
        before = await _server_pid(store)
        async with pg_proxy.faults.blackhole():
            with pytest.raises(StoreTimeout):
                await store.get_keys("acme", "pre-key", ["1"])
        assert store.pool.get_idle_size() == 0  # closed, not parked in the pool
        assert await store.get_keys("acme", "pre-key", ["1"]) == {}
        assert await _server_pid(store) != before
    finally:
        await store.close()


async def test_deadline_spans_every_statement_of_a_multi_statement_set(pg_proxy, db) -> None:
    """2,501 rows: BEGIN, three upserts, COMMIT. Each answer is 150 ms late, so each statement
    alone is quick, but together they pass the 0.5 s deadline before COMMIT is sent: the
    transaction is cut off, definitely not applied."""
    deadline = 0.5
    store = await PostgresAuthStore.open(pg_proxy.dsn, operation_deadline=deadline)
    try:
        keys = {f"{i:05d}": PRE_KEY for i in range(2500)}
        async with pg_proxy.faults.latency(150):
            with pytest.raises(StoreTimeout) as err:
                await store.set_keys("acme", {"pre-key": keys, "session": {"s": {"a": 1}}})
        assert err.value.outcome == "failed" and "writing keys" in err.value.message
        assert deadline * 0.9 <= err.value.waited_s < deadline + SLACK
        assert await db.fetchval("SELECT count(*) FROM whatsapp_keys") == 0
        await store.set_keys("acme", {"pre-key": {"1": PRE_KEY}})  # healthy again
    finally:
        await store.close()


async def test_waiting_behind_earlier_writes_counts_against_the_deadline(pg_dsn) -> None:
    store = await PostgresAuthStore.open(pg_dsn, operation_deadline=0.3)
    try:
        async with store.exclusive("acme"):  # e.g. an import holding the company
            with pytest.raises(StoreTimeout) as err:
                await store.write_creds("acme", {"registered": True})
        assert err.value.outcome == "failed"
        assert "earlier writes of the same company" in err.value.message
        await store.write_creds("acme", {"registered": True})
        assert await store.read_creds("acme") == {"registered": True}
    finally:
        await store.close()


async def test_an_exhausted_pool_times_out_at_the_deadline(pg_dsn) -> None:
    store = await PostgresAuthStore.open(pg_dsn, max_size=1, operation_deadline=0.3)
    try:
        async with store.connection():
            with pytest.raises(StoreTimeout) as err:
                await store.get_keys("acme", "pre-key", ["1"])
        assert err.value.outcome == "failed" and "free pooled connection" in err.value.message
        assert "max_size" in err.value.message
    finally:
        await store.close()


async def test_close_returns_while_an_operation_hangs_in_a_black_hole(pg_proxy) -> None:
    store = await PostgresAuthStore.open(pg_proxy.dsn, operation_deadline=DEADLINE)
    await store.set_keys("acme", {"pre-key": {"1": PRE_KEY}})
    async with pg_proxy.faults.blackhole():
        pending = asyncio.create_task(store.get_keys("acme", "pre-key", ["1"]))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await store.close()
        assert time.monotonic() - started < DEADLINE + SLACK
        with pytest.raises(Exception):  # noqa: B017 - cut off by close or its own deadline
            await pending


def _tcp(name: str) -> int | None:
    return getattr(socket, name, None)


async def test_every_pooled_socket_has_tcp_keepalive(pg_dsn) -> None:
    keepalive = TcpKeepalive(idle_s=7, interval_s=3, count=4, user_timeout_s=9)
    store = await PostgresAuthStore.open(pg_dsn, min_size=2, max_size=2, keepalive=keepalive)
    try:
        async with store.connection() as a, store.connection() as b:
            for conn in (a, b):
                sock = conn._transport.get_extra_info("socket")
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
                expected = {"TCP_KEEPIDLE": 7, "TCP_KEEPINTVL": 3, "TCP_KEEPCNT": 4,
                            "TCP_USER_TIMEOUT": 9000}
                for name, value in expected.items():
                    option = _tcp(name)
                    if option is not None:  # Linux has all four
                        assert sock.getsockopt(socket.IPPROTO_TCP, option) == value, name
    finally:
        await store.close()


async def test_keepalive_defaults_and_opt_out(pg_dsn) -> None:
    store = await PostgresAuthStore.open(pg_dsn)
    off = await PostgresAuthStore.open(pg_dsn, keepalive=None)
    try:
        async with store.connection() as conn, off.connection() as plain:
            sock = conn._transport.get_extra_info("socket")
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            if _tcp("TCP_KEEPIDLE") is not None:
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == \
                    TcpKeepalive().idle_s
            plain_sock = plain._transport.get_extra_info("socket")
            assert plain_sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
    finally:
        await store.close()
        await off.close()


@pytest.mark.parametrize(("options", "words"), [
    ({"operation_deadline": 1.0, "connect_timeout": 2.0}, "at most the operation deadline"),
    ({"operation_deadline": 0}, "above 0"),
])
async def test_timeouts_that_cannot_hold_are_refused(pg_dsn, options, words) -> None:
    with pytest.raises(ConfigError, match=words):
        await PostgresAuthStore.create(pg_dsn, **options)


async def test_connect_timeout_defaults_within_a_short_deadline(pg_dsn) -> None:
    store = await PostgresAuthStore.create(pg_dsn, operation_deadline=0.4)
    try:
        assert store.connect_timeout == 0.4 and store.operation_deadline == 0.4
    finally:
        await store.close()
