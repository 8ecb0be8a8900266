"""ResilientAuthStore end to end through the real fault proxy and real PostgreSQL: writes during
an outage are acknowledged, journaled and replayed; reads come from the overlay and cache; what
cannot be answered truthfully raises."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import orjson
import pytest
from resilient_testkit import fetch_creds, fetch_keys, wait_for_mode

from harness.authstate import StoreRejected, StoreUnavailable
from harness.authstate.resilient import JournalCorrupt, JournalLocked

KEY = {"public": bytes(range(32)), "private": bytes(range(32, 64))}


def _session(n: int) -> dict[str, object]:
    return {"_sessions": {"base": {"counter": n}}, "version": "v1"}


async def test_open_while_severed_then_recover_and_create_the_schema(pg_proxy, open_store):
    async with pg_proxy.faults.sever():
        store = await open_store(pg_proxy.dsn)
        assert store.status()["mode"] == "degraded"
        with pytest.raises(StoreUnavailable):  # nothing known about acme: no fresh creds
            await store.load("acme")
        await store.set_keys("acme", {"session": {"1.0": _session(1)}})
        assert store.last_source() == "journal"
    assert await store.flush(timeout=30)
    assert store.status()["mode"] == "normal"
    rows = await fetch_keys(pg_proxy.direct_dsn, "acme")
    assert {k: orjson.loads(v) for k, v in rows.items()} == {("session", "1.0"): _session(1)}


async def test_writes_during_an_outage_are_acked_journaled_and_replayed(pg_proxy, open_store):
    store = await open_store(pg_proxy.dsn)
    state = await store.load("acme")
    await state.keys.set({"session": {"s1": _session(1)}})
    assert store.last_source() == "db"
    async with pg_proxy.faults.sever():
        await state.keys.set({"session": {"s1": _session(2), "s2": _session(1)},
                              "pre-key": {str(i): KEY for i in range(1, 6)}})
        assert store.last_source() == "journal"
        await state.keys.set({"pre-key": {"1": None}})  # consumed pre-key: a delete
        status = store.status()
        assert status["mode"] == "degraded"
        assert status["journal"]["depth"] == 2 and status["journal"]["companies"] == 1
        rows = await fetch_keys(pg_proxy.direct_dsn, "acme")
        assert {k: orjson.loads(v) for k, v in rows.items()} == {("session", "s1"): _session(1)}
    assert await store.flush(timeout=30)
    rows = await fetch_keys(pg_proxy.direct_dsn, "acme")
    assert set(rows) == {("session", "s1"), ("session", "s2"),
                         *(("pre-key", str(i)) for i in range(2, 6))}
    assert orjson.loads(rows[("session", "s1")]) == _session(2)
    status = store.status()
    assert status["journal"]["depth"] == 0 and status["journal"]["replayed"] == 2
    assert status["breaker"]["state"] == "closed" and status["conflicts"] == 0


async def test_several_writes_to_one_key_during_an_outage_last_wins(pg_proxy, open_store):
    store = await open_store(pg_proxy.dsn)
    await store.set_keys("acme", {"session": {"k": _session(0)}})
    async with pg_proxy.faults.sever():
        for n in range(1, 21):
            await store.set_keys("acme", {"session": {"k": _session(n)}})
        await store.set_keys("acme", {"sender-key": {"g": {"v": 1}}})
        await store.set_keys("acme", {"sender-key": {"g": None}})  # written, then deleted
        assert await store.get_keys("acme", "session", ["k"]) == {"k": _session(20)}
    assert await store.flush(timeout=30)
    rows = await fetch_keys(pg_proxy.direct_dsn, "acme")
    assert orjson.loads(rows[("session", "k")]) == _session(20)
    assert ("sender-key", "g") not in rows


async def test_reads_during_an_outage_come_from_cache_and_journal(pg_proxy, open_store):
    store = await open_store(pg_proxy.dsn)
    await store.set_keys("acme", {"session": {"written": _session(1)}})
    await store.get_keys("acme", "session", ["read", "absent"])  # "absent": negative entry
    conn = await asyncpg.connect(pg_proxy.direct_dsn)
    await conn.execute("INSERT INTO whatsapp_keys (company_id, key_type, key_id, value) "
                       "VALUES ('acme', 'session', 'read2', '{\"r\": 2}')")
    await conn.close()
    assert await store.get_keys("acme", "session", ["read2"]) == {"read2": {"r": 2}}
    assert store.last_source() == "db"
    async with pg_proxy.faults.sever():
        await store.set_keys("acme", {"session": {"journaled": _session(3)}})  # opens breaker
        got = await store.get_keys("acme", "session", ["written", "read2", "absent"])
        assert got == {"written": _session(1), "read2": {"r": 2}}  # "absent" known absent
        assert store.last_source() == "cache"
        got = await store.get_keys("acme", "session", ["journaled", "written"])
        assert got == {"journaled": _session(3), "written": _session(1)}
        assert store.last_source() == "journal"


async def test_unknown_key_during_an_outage_raises_instead_of_absent(pg_proxy, open_store):
    store = await open_store(pg_proxy.dsn)
    await store.set_keys("acme", {"session": {"known": _session(1)}})
    async with pg_proxy.faults.sever():
        with pytest.raises(StoreUnavailable) as caught:
            await store.get_keys("acme", "session", ["known", "never-seen"])
        assert caught.value.retryable and caught.value.outcome == "failed"
        assert "session/never-seen" in caught.value.message
        assert "absent" in (caught.value.hint or "")
    await wait_for_mode(store, "normal")
    assert await store.get_keys("acme", "session", ["never-seen"]) == {}  # PostgreSQL says so


async def test_creds_during_an_outage_from_memory_then_from_the_file_cache(
        pg_proxy, open_store, tmp_path: Path):
    cache_dir = tmp_path / "shared-cache"
    first = await open_store(pg_proxy.dsn, cache_dir=cache_dir)
    state = await first.load("acme")
    state.creds["me"] = {"id": "5511999@s.whatsapp.net"}
    state.creds["registered"] = True
    await state.save_creds()
    async with pg_proxy.faults.sever():
        await first.set_keys("acme", {"session": {"x": _session(1)}})  # degrade
        again = await first.load("acme")
        assert again.creds["me"] == {"id": "5511999@s.whatsapp.net"}
        assert first.last_source() == "cache"
        await first.close()
        second = await open_store(pg_proxy.dsn, cache_dir=cache_dir)  # a new process, say
        assert second.status()["mode"] == "degraded"
        from_file = await second.load("acme")
        assert from_file.creds == state.creds
        assert second.last_source() == "cache"
    assert await second.flush(timeout=30)


async def test_paired_creds_never_become_fresh_creds_on_error(pg_proxy, open_store):
    setup = await open_store(pg_proxy.direct_dsn)
    paired = await setup.load("paired")
    paired.creds["me"] = {"id": "5511888@s.whatsapp.net"}
    await paired.save_creds()
    store = await open_store(pg_proxy.dsn)  # its own, empty cache_dir
    fresh = await store.load("newcomer")  # PostgreSQL says absent: fresh creds are right
    assert "me" not in fresh.creds
    async with pg_proxy.faults.sever():
        with pytest.raises(StoreUnavailable) as caught:
            await store.load("paired")
        assert "will not invent fresh creds" in (caught.value.hint or "")
        again = await store.load("newcomer")  # known absent, nothing saved since
        assert "me" not in again.creds
        assert store.last_source() == "cache"


async def test_creds_saved_during_an_outage_reach_postgres(pg_proxy, open_store):
    store = await open_store(pg_proxy.dsn)
    state = await store.load("acme")
    await state.save_creds()
    async with pg_proxy.faults.sever():
        state.creds["nextPreKeyId"] = 813
        await state.save_creds()
        assert store.last_source() == "journal"
        assert (await store.load("acme")).creds["nextPreKeyId"] == 813
    assert await store.flush(timeout=30)
    assert orjson.loads(await fetch_creds(pg_proxy.direct_dsn, "acme") or "{}")[
        "nextPreKeyId"] == 813


async def test_permanent_error_raises_without_journaling_or_opening_the_breaker(
        pg_proxy, open_store):
    store = await open_store(pg_proxy.dsn)
    await store.set_keys("acme", {"session": {"a": _session(1)}})
    conn = await asyncpg.connect(pg_proxy.direct_dsn)
    await conn.execute("ALTER TABLE whatsapp_keys RENAME TO whatsapp_keys_gone")
    await conn.close()
    with pytest.raises(StoreRejected) as caught:
        await store.set_keys("acme", {"session": {"a": _session(2)}})
    assert not caught.value.retryable
    status = store.status()
    assert status["breaker"]["state"] == "closed" and status["breaker"]["opened"] == 0
    assert status["journal"]["appended"] == 0 and status["journal"]["depth"] == 0


async def test_full_journal_refuses_writes_and_loses_none(pg_proxy, open_store):
    store = await open_store(pg_proxy.dsn, journal_max_bytes=16 * 1024)
    acked = 0
    async with pg_proxy.faults.sever():
        with pytest.raises(StoreUnavailable) as caught:
            for n in range(1000):
                await store.set_keys("acme", {"session": {f"s{n}": _session(n)}})
                acked += 1
        assert caught.value.outcome == "failed" and caught.value.retryable
        assert "journal is full" in caught.value.message
        assert "journal_max_bytes" in (caught.value.hint or "")
    assert acked > 10
    assert await store.flush(timeout=30)
    rows = await fetch_keys(pg_proxy.direct_dsn, "acme")
    assert set(rows) == {("session", f"s{n}") for n in range(acked)}
    await store.set_keys("acme", {"session": {"after": _session(0)}})  # room again
    assert store.last_source() == "db"


async def test_second_store_on_the_same_cache_dir_is_refused(pg_dsn, open_store, tmp_path):
    await open_store(pg_dsn, cache_dir=tmp_path / "one")
    with pytest.raises(JournalLocked):
        await open_store(pg_dsn, cache_dir=tmp_path / "one")


async def test_status_reports_every_documented_field(pg_proxy, open_store):
    store = await open_store(pg_proxy.dsn)
    async with pg_proxy.faults.sever():
        await store.set_keys("acme", {"session": {"a": _session(1)}})
    assert await store.flush(timeout=30)
    status = store.status()
    assert status["mode"] == "normal"
    assert set(status["breaker"]) >= {"state", "since", "opened", "last_error"}
    assert status["breaker"]["opened"] == 1
    assert "refused" in status["breaker"]["last_error"]
    assert set(status["journal"]) >= {"depth", "bytes", "peak_depth", "appended", "replayed",
                                      "replay_rate", "companies"}
    assert status["journal"]["peak_depth"] == 1 and status["journal"]["appended"] == 1
    assert status["journal"]["replay_rate"] > 0
    assert set(status["cache"]) >= {"entries", "bytes"} and status["cache"]["entries"] >= 1
    assert status["conflicts"] == 0 and status["deadline_s"] == 1.0
    states = [t["state"] for t in status["transitions"]]
    assert states == ["closed", "open", "half_open", "closed"]
    times = [t["at"] for t in status["transitions"]]
    assert times == sorted(times)
    assert all(isinstance(t["reason"], str) for t in status["transitions"])
    assert "5511" not in repr(status)


async def test_close_under_a_black_hole_is_bounded(pg_proxy, open_store):
    store = await open_store(pg_proxy.dsn)
    await store.set_keys("acme", {"session": {"a": _session(1)}})
    async with pg_proxy.faults.blackhole():
        async with asyncio.timeout(30):  # the bound is the point: far below a TCP timeout
            await store.close()


async def test_companies_need_postgres_and_list_replayed_ones(pg_proxy, open_store):
    store = await open_store(pg_proxy.dsn, probe_base_s=5.0, probe_cap_s=5.0)
    await store.set_keys("stored", {"session": {"a": _session(1)}})
    async with pg_proxy.faults.sever():
        await store.set_keys("journaled", {"session": {"a": _session(1)}})
        with pytest.raises(StoreUnavailable):
            await store.companies()
    assert await store.flush(timeout=60)
    await wait_for_mode(store, "normal")
    assert await store.companies() == ["journaled", "stored"]


async def test_corrupt_journal_stops_open_keeps_the_file_and_frees_the_directory(
        pg_dsn, open_store, tmp_path: Path):
    cache_dir = tmp_path / "cache"
    dead = pg_dsn.rsplit("@", 1)[0] + "@127.0.0.1:1/" + pg_dsn.rsplit("/", 1)[1]
    offline = await open_store(dead, cache_dir=cache_dir)
    for n in range(3):
        await offline.set_keys("acme", {"session": {f"s{n}": _session(n)}})
    await offline.close()
    journal = cache_dir / "journal.wal"
    data = bytearray(journal.read_bytes())
    data[40] ^= 0xFF  # inside the first record
    journal.write_bytes(bytes(data))
    with pytest.raises(JournalCorrupt) as caught:
        await open_store(pg_dsn, cache_dir=cache_dir)
    assert str(journal) in caught.value.message and "byte 16" in caught.value.message
    assert journal.read_bytes() == bytes(data)
    journal.rename(cache_dir / "journal.wal.damaged")  # what the hint says to do
    store = await open_store(pg_dsn, cache_dir=cache_dir)  # the lock was released
    assert store.status()["mode"] == "normal"


async def test_replay_over_a_slow_link_shrinks_its_batches_until_they_fit_the_deadline(
        pg_proxy, open_store):
    """~1 MB journaled while severed, healed behind a 400 KB/s upstream link: one 5000-row
    batch needs ~2 s, over the 1 s deadline, so replaying it as is would time out on every
    attempt for ever; halving after a timeout gets everything through."""
    store = await open_store(pg_proxy.dsn)
    await store.set_keys("acme", {"session": {"warm": _session(0)}})  # schema + clock known
    sever = pg_proxy.faults.sever()
    await sever.ainject()
    written = 0
    for n in range(60):  # 60 writes of 100 pre-keys, ~17 KB each
        await store.set_keys("acme", {"pre-key": {str(n * 100 + i): KEY for i in range(100)}})
        written += 100
    assert store.status()["journal"]["batch_rows"] == 5000
    slow = pg_proxy.faults.bandwidth(400, stream="upstream")
    await slow.ainject()
    try:
        await sever.aclear()
        assert await store.flush(timeout=90)
    finally:
        await slow.aclear()
    status = store.status()
    assert status["journal"]["batch_rows"] < 5000  # it had to shrink
    assert status["journal"]["depth"] == 0 and status["mode"] == "normal"
    rows = await fetch_keys(pg_proxy.direct_dsn, "acme")
    assert sum(1 for t, _ in rows if t == "pre-key") == written
