"""A store (re)started while PostgreSQL is away: its stamps must still order after its
predecessor's writes, and once PostgreSQL is back, creating the schema must not be cut short by
the probe's timeout."""

from __future__ import annotations

import asyncio

import orjson
from resilient_testkit import fetch_keys, wait_for_mode

from harness.authstate import schema
from harness.authstate.resilient import clock as clock_module

SERVER_AHEAD_S = 30
WAITING = ("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'authstate-harness' "
           "AND wait_event_type = 'Lock' AND now() - query_start >= interval '0.7 s'")


async def test_a_store_started_while_postgres_is_down_stamps_after_its_predecessor(
        pg_proxy, open_store, tmp_path, monkeypatch) -> None:
    """The server's clock runs 30 s ahead of this host's. The first process measured that and
    stamped its direct write with the server's time; its successor starts during an outage
    and cannot measure: stamping with offset 0 makes its journaled (newer) write 30 s older,
    and the replay discards it as a "conflict"."""
    monkeypatch.setattr(clock_module, "SERVER_TIME", "SELECT extract(epoch FROM "
                        f"clock_timestamp())::float8 + {SERVER_AHEAD_S}")
    cache_dir = tmp_path / "cache"
    first = await open_store(pg_proxy.dsn, cache_dir=cache_dir)
    await first.set_keys("acme", {"session": {"k": {"n": 1}}})
    await first.close()
    async with pg_proxy.faults.sever():
        second = await open_store(pg_proxy.dsn, cache_dir=cache_dir)
        assert second.status()["mode"] == "degraded"
        await second.set_keys("acme", {"session": {"k": {"n": 2}}})
        assert second.last_source() == "journal"
    assert await second.flush(timeout=30)
    rows = await fetch_keys(pg_proxy.direct_dsn, "acme")
    assert orjson.loads(rows[("session", "k")]) == {"n": 2}
    assert second.status()["conflicts"] == 0


async def test_schema_creation_after_a_degraded_start_may_wait_for_its_lock(
        pg_proxy, open_store, db) -> None:
    """The store starts during an outage on an empty database; when PostgreSQL is back a
    transaction holds the migration lock for a while. The DDL may wait its lock_timeout (1 s)
    for it: bounding it by the 0.5 s probe timeout cancels every attempt."""
    async with pg_proxy.faults.sever():
        store = await open_store(pg_proxy.dsn)
        assert store.status()["mode"] == "degraded"
        await db.execute("SELECT pg_advisory_lock($1)", schema._LOCK_KEY)
    try:
        async with asyncio.timeout(20):
            while not await db.fetchval(WAITING):  # noqa: ASYNC110 - polling the server
                await asyncio.sleep(0.05)
    finally:
        await db.execute("SELECT pg_advisory_unlock($1)", schema._LOCK_KEY)
    await wait_for_mode(store, "normal")
    await store.set_keys("acme", {"session": {"k": {"n": 1}}})
    assert set(await fetch_keys(pg_proxy.direct_dsn, "acme")) == {("session", "k")}
