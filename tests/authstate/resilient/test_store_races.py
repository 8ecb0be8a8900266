"""Reads that race writes and replays must neither return nor cache a value older than a write
acknowledged before them. Gates hold a replay batch or a database read at a chosen moment; the
database, the proxy and the store's code paths are all real."""

from __future__ import annotations

import asyncio
import threading

import pytest
from resilient_testkit import Gate, fetch_keys

from harness.authstate import StoreUnavailable
from harness.authstate.resilient import store as store_module


def _v(n: int) -> dict[str, int]:
    return {"n": n}


@pytest.fixture
async def recovering(pg_proxy, open_store, monkeypatch):  # type: ignore[no-untyped-def]
    """A store whose key acme/session/k is v0 in PostgreSQL and v1 in the journal, with the
    replay of v1 held at its start (mode "recovering")."""
    store = await open_store(pg_proxy.dsn)
    await store.set_keys("acme", {"session": {"k": _v(0)}})
    replay = Gate(store_module.apply_batch)
    monkeypatch.setattr(store_module, "apply_batch", replay)
    async with pg_proxy.faults.sever():
        await store.set_keys("acme", {"session": {"k": _v(1)}})
    await replay.entered.wait()
    assert store.status()["mode"] == "recovering"
    return store, replay


async def test_reads_while_recovering_overlay_pending_writes_on_postgres(
        recovering, pg_proxy) -> None:  # type: ignore[no-untyped-def]
    store, replay = recovering
    assert await store.get_keys("acme", "session", ["k"]) == {"k": _v(1)}
    assert store.last_source() == "journal"
    assert (await fetch_keys(pg_proxy.direct_dsn, "acme"))[("session", "k")] == '{"n": 0}'
    replay.release.set()
    assert await store.flush(timeout=30)


async def test_read_racing_a_replay_returns_the_replayed_value(
        recovering, pg_proxy, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store, replay = recovering
    read = Gate(store.inner.get_keys_text, hold_after=True)
    monkeypatch.setattr(store.inner, "get_keys_text", read)
    reader = asyncio.create_task(store.get_keys("acme", "session", ["k"]))
    await read.entered.wait()  # the read has PostgreSQL's answer: v0, from before the replay
    replay.release.set()
    assert await store.flush(timeout=30)  # v1 is in PostgreSQL and left the pending overlay
    read.release.set()
    assert await reader == {"k": _v(1)}  # not v0: v1 was acknowledged before the read began
    monkeypatch.undo()
    async with pg_proxy.faults.sever():  # and the cache holds v1, not the read's v0
        await store.set_keys("acme", {"session": {"other": _v(9)}})  # degrade
        assert await store.get_keys("acme", "session", ["k"]) == {"k": _v(1)}
        assert store.last_source() == "cache"


async def test_read_racing_a_direct_write_does_not_cache_the_older_value(
        pg_proxy, open_store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store = await open_store(pg_proxy.dsn)
    await store.set_keys("acme", {"session": {"k": _v(0)}})
    read = Gate(store.inner.get_keys_text, hold_after=True)
    monkeypatch.setattr(store.inner, "get_keys_text", read)
    reader = asyncio.create_task(store.get_keys("acme", "session", ["k"]))
    await read.entered.wait()  # the read has v0
    await store.set_keys("acme", {"session": {"k": _v(1)}})  # completes meanwhile
    read.release.set()
    assert await reader == {"k": _v(1)}
    monkeypatch.undo()
    async with pg_proxy.faults.sever():
        await store.set_keys("acme", {"session": {"other": _v(9)}})  # degrade
        assert await store.get_keys("acme", "session", ["k"]) == {"k": _v(1)}


async def test_creds_read_racing_a_save_does_not_cache_the_older_creds(
        pg_proxy, open_store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store = await open_store(pg_proxy.dsn)
    state = await store.load("acme")
    state.creds["nextPreKeyId"] = 1
    await state.save_creds()
    read = Gate(store.inner.read_creds_text, hold_after=True)
    monkeypatch.setattr(store.inner, "read_creds_text", read)
    loader = asyncio.create_task(store.load("acme"))
    await read.entered.wait()
    state.creds["nextPreKeyId"] = 2
    await state.save_creds()
    read.release.set()
    assert (await loader).creds["nextPreKeyId"] == 2
    monkeypatch.undo()
    async with pg_proxy.faults.sever():
        await store.set_keys("acme", {"session": {"other": _v(9)}})  # degrade
        assert (await store.load("acme")).creds["nextPreKeyId"] == 2


async def test_read_racing_clear_keys_does_not_cache_the_cleared_keys(
        pg_proxy, open_store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store = await open_store(pg_proxy.dsn)
    await store.set_keys("acme", {"session": {"k": _v(0)}})
    read = Gate(store.inner.get_keys_text, hold_after=True)
    monkeypatch.setattr(store.inner, "get_keys_text", read)
    reader = asyncio.create_task(store.get_keys("acme", "session", ["k"]))
    await read.entered.wait()  # the read has k from before the clear
    assert await store.clear_keys("acme") == 1
    read.release.set()
    await reader  # concurrent with the clear: either answer is right for it
    monkeypatch.undo()
    async with pg_proxy.faults.sever():
        await store.set_keys("acme", {"session": {"other": _v(9)}})  # degrade
        with pytest.raises(StoreUnavailable):  # not the cleared value from the cache
            await store.get_keys("acme", "session", ["k"])


async def test_creds_read_racing_delete_company_does_not_bring_the_creds_back(
        pg_proxy, open_store, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cache_dir = tmp_path / "cache"
    store = await open_store(pg_proxy.dsn, cache_dir=cache_dir)
    await store.write_creds("acme", {"me": {"id": "old"}})
    await store.close()
    store = await open_store(pg_proxy.dsn, cache_dir=cache_dir)  # nothing cached in memory
    read = Gate(store.inner.read_creds_text, hold_after=True)
    monkeypatch.setattr(store.inner, "read_creds_text", read)
    loader = asyncio.create_task(store.load("acme"))
    await read.entered.wait()  # the read has the creds from before the logout
    await store.delete_company("acme")
    read.release.set()
    await loader
    monkeypatch.undo()
    assert not store._creds_files.path("acme").exists()
    async with pg_proxy.faults.sever():
        await store.set_keys("beta", {"session": {"other": _v(9)}})  # degrade
        assert "me" not in (await store.load("acme")).creds  # logged out: fresh creds


async def test_creds_file_never_goes_back_to_older_creds(
        pg_proxy, open_store, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A load writes the creds it read to the file cache while a save writes newer ones: the
    older must not replace the newer on disk (a restart during an outage would load it)."""
    cache_dir = tmp_path / "cache"
    other = await open_store(pg_proxy.dsn)  # another instance saved them: not in our file
    await other.write_creds("acme", {"me": {"id": "1"}})
    store = await open_store(pg_proxy.dsn, cache_dir=cache_dir)
    files = store._creds_files
    real_write = files.write
    held = threading.Event()
    release = threading.Event()

    def write(company: str, text: str, *args: object, **kwargs: object) -> bool:
        if '"1"' in text:  # the load's write of the older creds: held on its thread
            held.set()
            release.wait(30)
        return real_write(company, text, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(files, "write", write)
    loader = asyncio.create_task(store.load("acme"))
    assert await asyncio.to_thread(held.wait, 30)
    await store.write_creds("acme", {"me": {"id": "2"}})  # newer: file written
    release.set()
    await loader
    monkeypatch.undo()
    await store.close()
    async with pg_proxy.faults.sever():  # a restart while PostgreSQL is away
        again = await open_store(pg_proxy.dsn, cache_dir=cache_dir)
        assert (await again.load("acme")).creds["me"] == {"id": "2"}
