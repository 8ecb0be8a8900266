"""Recovery finishes by itself: whatever happens while it ends (a write tripping the breaker
during the post-replay compaction), it goes on until the journal is empty and the breaker
closed, without waiting for the next write to restart it."""

from __future__ import annotations

from resilient_testkit import Gate, fetch_keys


async def test_recovery_goes_on_when_a_write_trips_the_breaker_during_its_compaction(
        pg_proxy, open_store, monkeypatch) -> None:
    store = await open_store(pg_proxy.dsn)
    await store.set_keys("acme", {"session": {"warm": {"n": 0}}})
    compaction = Gate(store._journal.compact)  # hold the post-replay compaction
    monkeypatch.setattr(store._journal, "compact", compaction)
    async with pg_proxy.faults.sever():
        await store.set_keys("acme", {"session": {"a": {"n": 1}}})  # journaled
    await compaction.entered.wait()  # replayed, breaker closed, compaction about to run
    async with pg_proxy.faults.sever():
        await store.set_keys("acme", {"session": {"b": {"n": 1}}})  # trips it again: journaled
        assert store.last_source() == "journal"
        compaction.release.set()  # the recovery task ends its compaction while degraded
    assert await store.flush(timeout=15)  # no further write comes to restart the recovery
    assert store.status()["mode"] == "normal"
    assert set(await fetch_keys(pg_proxy.direct_dsn, "acme")) == {
        ("session", "warm"), ("session", "a"), ("session", "b")}
