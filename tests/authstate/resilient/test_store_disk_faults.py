"""The resilient store when its journal's disk fails, with real PostgreSQL and the real fault
proxy; the failure itself is injected at the journal's file-operations seam
(`journal_faults.ScriptedOps`). What a real full or failing disk does is the disk-fault
scenarios' business."""

from __future__ import annotations

import asyncio
import errno

import orjson
import pytest
from journal_faults import Block, ScriptedOps, fail
from resilient_testkit import fetch_keys

from harness.authstate import StoreUnavailable


def _v(n: int) -> dict[str, int]:
    return {"n": n}


def _scripted(store) -> ScriptedOps:  # type: ignore[no-untyped-def]
    ops = ScriptedOps()
    store._journal.ops = ops  # the seam of the journal under test
    return ops


async def test_a_journaled_write_is_not_read_before_it_is_on_disk(pg_proxy, open_store) -> None:
    """While its fdatasync runs the write is not acknowledged; if the sync then fails it never
    was. A read meanwhile must not return it (it would be a value that never existed)."""
    store = await open_store(pg_proxy.dsn)
    await store.set_keys("acme", {"session": {"k": _v(0)}})
    ops = _scripted(store)
    async with pg_proxy.faults.sever():
        await store.set_keys("acme", {"session": {"other": _v(9)}})  # degraded, journaled
        sync = Block(then=fail(errno.EIO))
        ops.script("fdatasync", sync)
        writer = asyncio.create_task(store.set_keys("acme", {"session": {"k": _v(1)}}))
        await sync.wait_entered()
        assert await store.get_keys("acme", "session", ["k"]) == {"k": _v(0)}
        sync.release()
        with pytest.raises(StoreUnavailable) as caught:
            await writer
        assert caught.value.outcome == "failed"  # cut off the file again: never applied
        assert await store.get_keys("acme", "session", ["k"]) == {"k": _v(0)}
    assert await store.flush(timeout=30)
    rows = await fetch_keys(pg_proxy.direct_dsn, "acme")
    assert orjson.loads(rows[("session", "k")]) == _v(0)
    assert orjson.loads(rows[("session", "other")]) == _v(9)


async def test_after_a_failed_journal_write_the_replay_drains_and_the_journal_recovers(
        pg_proxy, open_store) -> None:
    """The failed journal must neither stop the replay of what it holds (re-applying its first
    batch on every probe) nor stay unusable for the next outage once the disk is fine."""
    store = await open_store(pg_proxy.dsn)
    ops = _scripted(store)
    async with pg_proxy.faults.sever():
        await store.set_keys("acme", {"session": {"a": _v(1)}})
        assert store.last_source() == "journal"
        ops.script("fdatasync", fail(errno.EIO))
        with pytest.raises(StoreUnavailable) as caught:
            await store.set_keys("acme", {"session": {"b": _v(1)}})
        assert caught.value.outcome == "failed"
    assert await store.flush(timeout=15)
    assert store.status()["mode"] == "normal"
    assert set(await fetch_keys(pg_proxy.direct_dsn, "acme")) == {("session", "a")}
    async with pg_proxy.faults.sever():  # the next outage finds a working journal
        await store.set_keys("acme", {"session": {"c": _v(1)}})
        assert store.last_source() == "journal"
    assert await store.flush(timeout=30)
    assert set(await fetch_keys(pg_proxy.direct_dsn, "acme")) == {("session", "a"),
                                                                   ("session", "c")}
