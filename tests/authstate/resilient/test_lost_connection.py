"""A connection lost while the store holds it between two calls (real sever through the fault
proxy): asyncpg takes it back at once and the next call raises InterfaceError "... released
back to the pool" with nothing underneath. That is an outage, not a client bug: a direct write
is journaled (acknowledged), a replay batch re-opens the breaker and is retried; neither is
reported as a permanent StoreRejected."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from resilient_testkit import fetch_keys, wait_for_mode

from harness.authstate import store as reference_module
from harness.authstate.resilient import store as store_module


class HoldLeased:
    """Holds a function that receives a leased connection first, until released; remembers
    the connection (timing control only: the database and the network stay real)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.conn: asyncpg.Connection | None = None
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, conn: asyncpg.Connection, *args: Any) -> Any:
        self.conn = conn
        self.entered.set()
        await self.release.wait()
        return await self.real(conn, *args)

    async def wait_until_taken_back(self) -> None:
        """Until asyncpg has detached the held connection (it saw the socket close)."""
        async with asyncio.timeout(10):
            while True:
                try:
                    self.conn.is_closed()  # type: ignore[union-attr]
                except asyncpg.InterfaceError:
                    return
                await asyncio.sleep(0.01)


async def test_direct_write_on_a_connection_lost_while_leased_is_journaled(
        pg_proxy, open_store, monkeypatch) -> None:
    store = await open_store(pg_proxy.dsn, operation_deadline=30)
    await store.set_keys("acme", {"session": {"warm": {"n": 0}}})
    hold = HoldLeased(reference_module._execute_atomically)
    monkeypatch.setattr(reference_module, "_execute_atomically", hold)
    write = asyncio.create_task(store.set_keys("acme", {"session": {"k": {"n": 1}}}))
    await hold.entered.wait()
    async with pg_proxy.faults.sever():
        await hold.wait_until_taken_back()
        hold.release.set()
        await write  # acknowledged: journaled, not raised as a permanent error
        assert store.status()["journal"]["depth"] == 1
        opened = [t for t in store.status()["transitions"] if t["state"] == "open"]
        assert "StoreUnavailable" in opened[0]["reason"] and "lost" in opened[0]["reason"]
        assert store.status()["fence"]["pending"] == 0  # refused before sending: failed
    monkeypatch.undo()
    assert await store.flush(timeout=30)
    assert (await fetch_keys(pg_proxy.direct_dsn, "acme"))[("session", "k")] == '{"n": 1}'


async def test_replay_on_a_connection_lost_while_leased_is_retried(pg_proxy, open_store,
                                                                   monkeypatch) -> None:
    store = await open_store(pg_proxy.dsn)
    await store.set_keys("acme", {"session": {"warm": {"n": 0}}})
    hold = HoldLeased(store_module.apply_batch)
    monkeypatch.setattr(store_module, "apply_batch", hold)
    async with pg_proxy.faults.sever():
        await store.set_keys("acme", {"session": {"k": {"n": 1}}})  # journaled
    await hold.entered.wait()  # the probe succeeded; the replay holds its connection
    async with pg_proxy.faults.sever():
        await hold.wait_until_taken_back()
        hold.release.set()  # apply_batch calls conn.transaction() on the detached proxy
        await wait_for_mode(store, "degraded")
        reason = store.status()["transitions"][-1]["reason"]
        assert reason.startswith("replay failed: StoreUnavailable") and "lost" in reason
        assert "released back to the pool" in reason
        assert store.status()["journal"]["depth"] == 1
    monkeypatch.undo()
    assert await store.flush(timeout=30)
    assert (await fetch_keys(pg_proxy.direct_dsn, "acme"))[("session", "k")] == '{"n": 1}'
