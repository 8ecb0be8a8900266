"""The breaker under real faults through the fault proxy: refused, reset and black-holed
connections open it at the first failure, the write is journaled, and a probe closes it again
after the fault is cleared."""

from __future__ import annotations

import time

import pytest
from resilient_testkit import Gate, fetch_keys, wait_for_mode

from harness.authstate.resilient import store as store_module


def _value(n: int) -> dict[str, int]:
    return {"n": n}


async def _open_and_warm(open_store, dsn: str):  # type: ignore[no-untyped-def]
    store = await open_store(dsn)
    await store.set_keys("acme", {"session": {"warm": _value(0)}})  # a pooled connection
    assert store.status()["breaker"]["state"] == "closed"
    return store


@pytest.mark.parametrize("fault", ["sever", "reset_peers"])
async def test_refused_or_reset_connections_open_the_breaker_at_once(pg_proxy, open_store,
                                                                     fault: str) -> None:
    store = await _open_and_warm(open_store, pg_proxy.dsn)
    async with getattr(pg_proxy.faults, fault)():
        await store.set_keys("acme", {"session": {"k": _value(1)}})  # acked: journaled
        status = store.status()
        assert status["breaker"]["state"] == "open" and status["breaker"]["opened"] == 1
        assert status["mode"] == "degraded"
        assert store.last_source() == "journal"
        assert [t["state"] for t in status["transitions"]] == ["closed", "open"]
        await store.set_keys("acme", {"session": {"k": _value(2)}})
        assert store.status()["breaker"]["opened"] == 1  # still the same open
    await wait_for_mode(store, "normal")
    assert store.status()["transitions"][-2]["state"] == "half_open"
    assert (await fetch_keys(pg_proxy.direct_dsn, "acme"))[("session", "k")] == '{"n": 2}'


async def test_black_hole_is_detected_by_the_operation_deadline(pg_proxy, open_store) -> None:
    store = await _open_and_warm(open_store, pg_proxy.dsn)
    deadline = store.status()["deadline_s"]
    async with pg_proxy.faults.blackhole():
        started = time.monotonic()
        await store.set_keys("acme", {"session": {"k": _value(1)}})
        waited = time.monotonic() - started
        # The bound is the point: the caller waits about one deadline, not a TCP timeout.
        assert deadline * 0.9 <= waited < deadline + 2.0
        status = store.status()
        assert status["breaker"]["state"] == "open"
        opened = [t for t in status["transitions"] if t["state"] == "open"]
        assert len(opened) == 1 and "timed out" in opened[0]["reason"]
        assert store.last_source() == "journal"
        started = time.monotonic()
        await store.set_keys("acme", {"session": {"k": _value(2)}})  # breaker open: no wait
        assert time.monotonic() - started < deadline
        assert await store.get_keys("acme", "session", ["k", "warm"]) == {
            "k": _value(2), "warm": _value(0)}
    await wait_for_mode(store, "normal")
    assert (await fetch_keys(pg_proxy.direct_dsn, "acme"))[("session", "k")] == '{"n": 2}'


async def test_black_hole_read_times_out_then_is_served_from_cache(pg_proxy,
                                                                   open_store) -> None:
    store = await _open_and_warm(open_store, pg_proxy.dsn)
    async with pg_proxy.faults.blackhole():
        got = await store.get_keys("acme", "session", ["warm"])
        assert got == {"warm": _value(0)} and store.last_source() == "cache"
        assert "timed out" in store.status()["transitions"][-1]["reason"]


async def test_failed_replay_reopens_the_breaker(pg_proxy, open_store, monkeypatch) -> None:
    store = await _open_and_warm(open_store, pg_proxy.dsn)
    gate = Gate(store_module.apply_batch)
    monkeypatch.setattr(store_module, "apply_batch", gate)
    async with pg_proxy.faults.sever():
        await store.set_keys("acme", {"session": {"k": _value(1)}})
    await gate.entered.wait()  # the probe succeeded; the replay holds its connection
    assert store.status()["mode"] == "recovering"
    async with pg_proxy.faults.sever():  # the fault is back, mid-replay
        gate.release.set()
        await wait_for_mode(store, "degraded")
        status = store.status()  # (last_error may already be a later probe's failure)
        assert status["transitions"][-1]["reason"].startswith("replay failed")
        assert status["journal"]["depth"] == 1  # not replayed, still pending
        assert [t["state"] for t in status["transitions"]][-3:] == ["open", "half_open", "open"]
    assert await store.flush(timeout=30)
    assert (await fetch_keys(pg_proxy.direct_dsn, "acme"))[("session", "k")] == '{"n": 1}'
