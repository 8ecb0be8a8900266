"""Late-delivered writes (stragglers), through the real fault proxy and real PostgreSQL.

A write sent into a slow link outlasts the deadline; the store acknowledges it through the
journal and the client closes its socket, but the proxy still holds the bytes and delivers them
later. Newer writes of the same rows (an upsert, a delete) are acknowledged meanwhile. Two
orders, two defences:

- the straggler lands *before* the replay (a latency toxic holds it 3 s; probes cannot pass
  meanwhile): the direct write carried its send-time stamp, so the replay sees it as older and
  the newer writes win (with the server's `now()` it looked newer and they were discarded as
  "conflicts");
- the straggler lands *after* the replay (a bandwidth toxic lets the replay's small statements
  through on fresh connections while its 200 KB still trickle): the fence terminated its
  session before the replay, so nothing of it lands; without the fence it commits last.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import asyncpg
import orjson
import pytest
from resilient_testkit import fetch_creds, fetch_keys, wait_for_mode

from harness.authstate.resilient.fence import Fence
from harness.dsn import with_host_port
from harness.infra.postgres.roles import CannotCreateRole, LoginRole, login_role

# Upstream throttled to this: the straggler's ~200 KB need ~6 s, the replay's statements on a
# fresh connection (~9 KB with asyncpg's type introspection) ~0.3 s of the 1 s deadline.
STRAGGLER_KBPS = 32
# Upstream delay: the straggler arrives 3 s after it was sent, 2 s after its deadline; a probe
# (0.5 s timeout) cannot get through meanwhile.
STRAGGLER_DELAY_MS = 3000
OLD_A = {"old": "a" * 100_000}
OLD_B = {"old": "b" * 100_000}
NEW_A = {"new": "a"}
SESSIONS = ("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = 'authstate-harness'")


def _decoded(rows: dict[tuple[str, str], str]) -> dict[tuple[str, str], object]:
    return {ref: orjson.loads(text) for ref, text in rows.items()}


async def _rows(pg_proxy) -> dict[tuple[str, str], object]:  # type: ignore[no-untyped-def]
    return _decoded(await fetch_keys(pg_proxy.direct_dsn, "acme"))


async def _session_ended(db: asyncpg.Connection, pid: int, within_s: float = 60.0) -> None:
    """Wait until the server session `pid` has exited (then nothing more can come from it)."""
    async with asyncio.timeout(within_s):
        while await db.fetchval(  # noqa: ASYNC110 - polling the server, no event to wait on
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
            await asyncio.sleep(0.05)


async def _warm(store, db: asyncpg.Connection) -> int:  # type: ignore[no-untyped-def]
    """Rows a and b written directly; the pid of the one pooled connection (the straggler's)."""
    await store.set_keys("acme", {"session": {"a": {"v": 0}, "b": {"v": 0}}})
    [pid] = [r[0] for r in await db.fetch(SESSIONS)]
    return pid


async def _straggle(store) -> None:  # type: ignore[no-untyped-def]
    """The straggler (timed out, acknowledged via the journal), then a newer value of one of
    its rows and a delete of the other, both acknowledged."""
    await store.set_keys("acme", {"session": {"a": OLD_A, "b": OLD_B}})
    assert store.last_source() == "journal"
    assert store.status()["breaker"]["state"] == "open"
    await store.set_keys("acme", {"session": {"a": NEW_A}})
    await store.set_keys("acme", {"session": {"b": None}})


async def test_a_write_delivered_late_but_before_the_replay_does_not_beat_newer_writes(
        pg_proxy, open_store, db) -> None:
    store = await open_store(pg_proxy.dsn)
    straggler_pid = await _warm(store, db)
    async with pg_proxy.faults.latency(STRAGGLER_DELAY_MS, stream="upstream"):
        await _straggle(store)
        await _session_ended(db, straggler_pid)  # delivered, committed, then the close
        assert await _rows(pg_proxy) == {("session", "a"): OLD_A, ("session", "b"): OLD_B}
        assert store.status()["mode"] == "degraded"  # no probe got through meanwhile
    assert await store.flush(timeout=30)
    assert await _rows(pg_proxy) == {("session", "a"): NEW_A}
    status = store.status()
    assert status["conflicts"] == 0  # the straggler's row was older, not "another writer's"
    assert status["fence"]["pending"] == 0 and status["fence"]["cleared"] == 1


async def test_a_creds_save_delivered_late_does_not_beat_a_newer_save(pg_proxy, open_store,
                                                                       db) -> None:
    store = await open_store(pg_proxy.dsn)
    await store.write_creds("acme", {"me": {"id": "0"}})
    [straggler_pid] = [r[0] for r in await db.fetch(SESSIONS)]
    old, new = {"me": {"id": "1"}, "pad": "x" * 100_000}, {"me": {"id": "2"}}
    async with pg_proxy.faults.latency(STRAGGLER_DELAY_MS, stream="upstream"):
        await store.write_creds("acme", old)  # times out: journaled
        assert store.last_source() == "journal"
        await store.write_creds("acme", new)
        await _session_ended(db, straggler_pid)  # the old save committed meanwhile
        assert orjson.loads(await fetch_creds(pg_proxy.direct_dsn, "acme")) == old
    assert await store.flush(timeout=30)
    assert orjson.loads(await fetch_creds(pg_proxy.direct_dsn, "acme")) == new
    assert store.status()["conflicts"] == 0


@pytest.mark.parametrize("fence", [True, False], ids=["fenced", "unfenced-shows-the-bug"])
async def test_a_write_delivered_after_the_replay_never_lands(pg_proxy, open_store, db,
                                                              fence: bool) -> None:
    store = await open_store(pg_proxy.dsn, fence=fence)
    straggler_pid = await _warm(store, db)
    async with pg_proxy.faults.bandwidth(STRAGGLER_KBPS, stream="upstream"):
        await _straggle(store)
        assert await store.flush(timeout=30)  # replayed while the straggler still trickles
        assert await _rows(pg_proxy) == {("session", "a"): NEW_A}
    # Cleared: what the proxy still held is delivered now, then the client's close.
    await _session_ended(db, straggler_pid)
    assert await store.flush(timeout=30)
    rows = await _rows(pg_proxy)
    status = store.status()
    if fence:
        assert rows == {("session", "a"): NEW_A}  # the newer value and the delete held
        assert status["fence"] == {"pending": 0, "fenced": 1, "cleared": 0, "abandoned": 0,
                                   "unfenceable": 0, "mode": "terminate", "enabled": True}
        assert status["conflicts"] == 0
    else:  # the bug the fence closes: the older write committed last
        assert rows == {("session", "a"): OLD_A, ("session", "b"): OLD_B}
        assert status["fence"]["enabled"] is False and status["fence"]["fenced"] == 0


@pytest.fixture
async def role_without_terminate(pg_dsn: str, db: asyncpg.Connection) -> AsyncIterator[LoginRole]:
    """A LOGIN role owning the test's database, in which pg_terminate_backend is not executable
    by PUBLIC (as some hardened servers have it): the fence gets 42501."""
    async with contextlib.AsyncExitStack() as stack:
        try:
            role = await stack.enter_async_context(login_role(pg_dsn, pg_dsn))
        except CannotCreateRole as exc:
            pytest.skip(f"{exc.message} ({exc.hint})")
        await db.execute("REVOKE EXECUTE ON FUNCTION pg_terminate_backend(integer, bigint) "
                         "FROM PUBLIC")
        try:
            yield role
        finally:
            await db.execute("GRANT EXECUTE ON FUNCTION pg_terminate_backend(integer, bigint) "
                             "TO PUBLIC")


async def test_without_the_right_to_terminate_the_fence_waits_for_the_straggler(
        pg_proxy, open_store, db, role_without_terminate: LoginRole) -> None:
    """The weaker mode: the fence may not end the session, so the store stays degraded (writes
    journaled, acknowledged) until the session is gone by itself; the straggler then has
    landed *before* the replay, and the newer writes still win."""
    dsn = with_host_port(role_without_terminate.dsn, pg_proxy.host, pg_proxy.port)
    store = await open_store(dsn)
    straggler_pid = await _warm(store, db)
    async with pg_proxy.faults.bandwidth(STRAGGLER_KBPS, stream="upstream"):
        await _straggle(store)
        assert not await store.flush(timeout=3)  # the fence holds the replay back
        status = store.status()
        assert status["mode"] == "degraded" and status["journal"]["depth"] == 3
        assert status["fence"]["mode"] == "wait" and status["fence"]["pending"] == 1
        assert status["breaker"]["last_error"].startswith("fence: ")
        assert await _rows(pg_proxy) == {("session", "a"): {"v": 0}, ("session", "b"): {"v": 0}}
    await _session_ended(db, straggler_pid)  # the straggler landed, its session ended
    assert await store.flush(timeout=30)
    assert await _rows(pg_proxy) == {("session", "a"): NEW_A}
    assert store.status()["fence"]["fenced"] == 1


# -- the fence itself on real sessions ------------------------------------------------------------
async def test_fence_terminates_the_session_and_confirms_it_is_gone(pg_dsn, db) -> None:
    victim = await asyncpg.connect(pg_dsn)
    pid = victim.get_server_pid()
    fence = Fence()
    fence.add(pid, time.time())
    fence.add(2**31 - 1, time.time())  # no such process: nothing to wait for
    try:
        assert await fence.run(db, time.monotonic() + 5)
    finally:
        victim.terminate()
    assert not await db.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)
    assert fence.pending == {} and fence.fenced == 1 and fence.cleared == 1
    assert await fence.run(db, time.monotonic() + 5)  # nothing pending: done at once


async def test_fence_leaves_a_session_started_after_the_write_alone(pg_dsn, db) -> None:
    """A recycled pid: a session that began after the fenced write was sent is not ours."""
    bystander = await asyncpg.connect(pg_dsn)
    try:
        fence = Fence()
        fence.add(bystander.get_server_pid(), time.time() - 60)  # "sent" a minute before it
        assert await fence.run(db, time.monotonic() + 5)
        assert await bystander.fetchval("SELECT 1") == 1
        assert fence.fenced == 0 and fence.cleared == 1
    finally:
        await bystander.close()


async def test_fence_never_terminates_its_own_session(db) -> None:
    fence = Fence()
    fence.add(db.get_server_pid(), time.time())
    assert await fence.run(db, time.monotonic() + 5)
    assert await db.fetchval("SELECT 1") == 1


async def test_fence_that_cannot_finish_in_time_stays_pending(pg_dsn, db) -> None:
    """Waiting mode (no right to terminate): the session stays, the attempt ends by its
    deadline with False, and the pid stays pending for the next attempt."""
    victim = await asyncpg.connect(pg_dsn)
    try:
        fence = Fence()
        fence.can_terminate = False
        fence.add(victim.get_server_pid(), time.time())
        assert not await fence.run(db, time.monotonic() + 0.3)
        assert len(fence.pending) == 1 and fence.fenced == 0
        victim.terminate()
        assert await fence.run(db, time.monotonic() + 10)  # gone by itself: fenced
        assert fence.pending == {} and fence.fenced == 1
    finally:
        victim.terminate()


async def test_fence_gives_up_after_its_bound_in_waiting_mode(pg_dsn, db) -> None:
    victim = await asyncpg.connect(pg_dsn)
    try:
        fence = Fence(give_up_s=0.0)
        fence.can_terminate = False
        fence.add(victim.get_server_pid(), time.time())
        assert await fence.run(db, time.monotonic() + 0.3)
        assert fence.pending == {} and fence.abandoned == 1
        assert await victim.fetchval("SELECT 1") == 1  # it was left alone
    finally:
        victim.terminate()


async def test_store_opened_degraded_has_nothing_to_fence(pg_proxy, open_store) -> None:
    async with pg_proxy.faults.sever():
        store = await open_store(pg_proxy.dsn)
        await store.set_keys("acme", {"session": {"a": NEW_A}})  # refused: outcome failed
    await wait_for_mode(store, "normal")
    assert store.status()["fence"]["pending"] == 0 and store.status()["fence"]["fenced"] == 0


async def test_a_direct_write_cancelled_after_it_was_sent_is_fenced(pg_proxy, open_store,
                                                                    db) -> None:
    """The application gives up on a write (its own asyncio.timeout) after the statement was
    sent: the outcome is unknown, exactly as for a timeout. The store must fence that session
    before the company's next write reaches PostgreSQL, so the newer write acknowledged next
    cannot be overwritten by the cancelled one landing late. Other companies are not held up:
    a cancellation says nothing about PostgreSQL's health."""
    store = await open_store(pg_proxy.dsn)
    straggler_pid = await _warm(store, db)
    async with pg_proxy.faults.bandwidth(STRAGGLER_KBPS, stream="upstream"):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):  # the caller cancels the call in flight
                await store.set_keys("acme", {"session": {"a": OLD_A, "b": OLD_B}})
        await store.set_keys("beta", {"session": {"x": NEW_A}})
        assert store.last_source() == "db"  # not degraded by the cancellation
        await store.set_keys("acme", {"session": {"a": NEW_A}})  # after the fence
        assert await store.flush(timeout=30)
        assert store.status()["fence"]["fenced"] == 1
    await _session_ended(db, straggler_pid)  # whatever the proxy held is delivered by now
    assert await store.flush(timeout=30)
    assert await _rows(pg_proxy) == {("session", "a"): NEW_A, ("session", "b"): {"v": 0}}
