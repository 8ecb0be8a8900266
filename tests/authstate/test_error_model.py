"""The store's error model against real faults: each class of `StoreError`, its `outcome` and
`retryable`, produced by a real PostgreSQL and a real fault proxy (no mocks), and a few pure
checks of `classify` on asyncpg's own exception classes."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from store_testkit import terminate_when_blocked

from harness.authstate import (
    PostgresAuthStore,
    StoreError,
    StoreRejected,
    StoreTimeout,
    StoreUnavailable,
)
from harness.authstate.db_errors import classify
from harness.dsn import with_database
from harness.infra.ports import free_port
from harness.infra.postgres.roles import CannotCreateRole, LoginRole, login_role, with_user

PRE_KEY = {"public": bytes(range(32)), "private": bytes(range(32, 64))}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def _assert_retryable(err: StoreError, outcome: str) -> None:
    assert isinstance(err, StoreUnavailable) and err.retryable
    assert err.outcome == outcome, err
    assert err.hint and "retry" in err.hint.lower()
    if outcome == "unknown":
        assert "may have been applied" in err.hint
    else:
        assert "did not complete" in err.hint


def _assert_permanent(err: StoreError, sqlstate: str, *hint_words: str) -> None:
    assert isinstance(err, StoreRejected) and not err.retryable
    assert err.outcome == "failed" and err.sqlstate == sqlstate
    assert err.hint and "retry" not in err.hint.lower()
    for word in hint_words:
        assert word in err.hint, (word, err.hint)


@pytest.fixture
async def role(pg_dsn: str) -> AsyncIterator[LoginRole]:
    """A LOGIN role that is not a superuser (superusers ignore connection limits and grants)
    and owns the test's database, so a store connected as it can create its tables."""
    async with contextlib.AsyncExitStack() as stack:
        try:
            made = await stack.enter_async_context(login_role(pg_dsn, pg_dsn))
        except CannotCreateRole as exc:
            pytest.skip(f"{exc.message} ({exc.hint})")
        yield made


@contextlib.asynccontextmanager
async def _opened(dsn: str, **options: object) -> AsyncIterator[PostgresAuthStore]:
    store = await PostgresAuthStore.open(dsn, **options)  # type: ignore[arg-type]
    try:
        yield store
    finally:
        await store.close()


# -- connection-level faults through the proxy -----------------------------------------------
async def test_refused_connection_fails_retryably_and_nothing_is_sent(pg_proxy, db) -> None:
    async with _opened(pg_proxy.dsn) as store:
        await store.set_keys("acme", {"pre-key": {"1": PRE_KEY}})
        async with pg_proxy.faults.sever():
            with pytest.raises(StoreUnavailable) as read:
                await store.get_keys("acme", "pre-key", ["1"])
            with pytest.raises(StoreUnavailable) as write:
                await store.set_keys("acme", {"pre-key": {"2": PRE_KEY}})
        for err in (read.value, write.value):
            assert not isinstance(err, StoreTimeout)
            _assert_retryable(err, "failed")  # refused before anything was sent
            assert "refused" in err.message and "'acme'" in err.message
            assert any(isinstance(e, ConnectionRefusedError) for e in _chain(err))
        assert "reading pre-key keys" in read.value.message
        assert "writing keys" in write.value.message
        assert await store.get_keys("acme", "pre-key", ["1", "2"]) == {"1": PRE_KEY}


async def test_reset_connection_fails_retryably(pg_proxy) -> None:
    async with _opened(pg_proxy.dsn) as store:
        await store.set_keys("acme", {"pre-key": {"1": PRE_KEY}})
        async with pg_proxy.faults.reset_peers():
            with pytest.raises(StoreUnavailable) as err:
                await store.get_keys("acme", "pre-key", ["1"])
        assert not isinstance(err.value, StoreTimeout)
        _assert_retryable(err.value, "failed")
        assert any(isinstance(e, (ConnectionResetError, asyncpg.ConnectionDoesNotExistError))
                   for e in _chain(err.value))
        assert await store.get_keys("acme", "pre-key", ["1"]) == {"1": PRE_KEY}


async def _lose_connection_mid_flight(pg_proxy, call) -> StoreError:  # type: ignore[no-untyped-def]
    """Answers are held back 2 s by the proxy; the connection is severed 0.5 s into the call,
    after the request reached PostgreSQL but before its answer came back."""
    async with pg_proxy.faults.latency(2000):
        task = asyncio.create_task(call())
        await asyncio.sleep(0.5)
        async with pg_proxy.faults.sever():
            with pytest.raises(StoreError) as err:
                await task
    return err.value


async def test_write_lost_after_it_was_sent_is_unknown_and_keeps_the_real_cause(
        pg_proxy, db) -> None:
    """The outage must surface as the lost connection, never as asyncpg's follow-up
    "cannot call Connection.terminate(): connection has been released back to the pool"."""
    async with _opened(pg_proxy.dsn, operation_deadline=10) as store:
        await store.set_keys("acme", {"session": {"s": {"n": 0}}})  # statement prepared
        err = await _lose_connection_mid_flight(
            pg_proxy, lambda: store.set_keys("acme", {"session": {"s": {"n": 1}}}))
        _assert_retryable(err, "unknown")
        chain = list(_chain(err))
        assert not any("released back to the pool" in str(e) for e in chain), chain
        assert isinstance(err.__cause__, asyncpg.ConnectionDoesNotExistError), chain
        assert "lost" in err.message
        # and "unknown" was the truthful answer: the server had committed it
        assert await store.get_keys("acme", "session", ["s"]) == {"s": {"n": 1}}


async def test_read_lost_mid_flight_is_failed(pg_proxy) -> None:
    async with _opened(pg_proxy.dsn, operation_deadline=10) as store:
        await store.set_keys("acme", {"pre-key": {"1": PRE_KEY}})
        await store.get_keys("acme", "pre-key", ["1"])
        err = await _lose_connection_mid_flight(
            pg_proxy, lambda: store.get_keys("acme", "pre-key", ["1"]))
        _assert_retryable(err, "failed")  # a read changes nothing
        assert not any("released back to the pool" in str(e) for e in _chain(err))


async def test_backend_terminated_during_a_write_is_unknown_57P01(pg_dsn, db) -> None:
    async with _opened(pg_dsn, operation_deadline=30) as store:
        err = await terminate_when_blocked(
            db, lambda: store.set_keys("acme", {"pre-key": {"1": PRE_KEY}}))
        _assert_retryable(err, "unknown")
        assert err.sqlstate == "57P01" and "terminated" in err.message
        await store.set_keys("acme", {"pre-key": {"1": PRE_KEY}})  # the pool recovered


async def test_backend_terminated_during_a_read_is_failed_57P01(pg_dsn, db) -> None:
    async with _opened(pg_dsn, operation_deadline=30) as store:
        err = await terminate_when_blocked(
            db, lambda: store.get_keys("acme", "pre-key", ["1"]))
        _assert_retryable(err, "failed")
        assert err.sqlstate == "57P01"


async def test_write_on_a_connection_lost_while_leased_is_retryable_not_a_client_bug(
        pg_proxy, monkeypatch) -> None:
    """The connection dies while the store holds it between two calls (a real sever): asyncpg
    takes it back at once, detaching the proxy the lease holds, and the next call raises
    InterfaceError "released back to the pool" with nothing underneath. It used to be
    classified as a permanent client failure (StoreRejected)."""
    from harness.authstate import store as store_module

    entered, release = asyncio.Event(), asyncio.Event()
    held: list[asyncpg.Connection] = []
    real = store_module._execute_atomically

    async def hold(conn, *args):  # type: ignore[no-untyped-def]
        held.append(conn)
        entered.set()
        await release.wait()
        return await real(conn, *args)

    async with _opened(pg_proxy.dsn, operation_deadline=30) as store:
        await store.set_keys("acme", {"pre-key": {"1": PRE_KEY}})
        monkeypatch.setattr(store_module, "_execute_atomically", hold)
        task = asyncio.create_task(store.set_keys("acme", {"pre-key": {"2": PRE_KEY}}))
        await entered.wait()
        pid = held[0].get_server_pid()
        async with pg_proxy.faults.sever():
            async with asyncio.timeout(10):
                while True:  # until asyncpg has taken the connection back
                    try:
                        held[0].is_closed()
                    except asyncpg.InterfaceError:
                        break
                    await asyncio.sleep(0.01)
            release.set()
            with pytest.raises(StoreError) as err:
                await task
        monkeypatch.undo()
        # refused before anything was sent: truthfully "failed"
        _assert_retryable(err.value, "failed")
        assert "lost" in err.value.message and err.value.backend_pid == pid
        assert any("released back to the pool" in str(e) for e in _chain(err.value))
        await store.set_keys("acme", {"pre-key": {"2": PRE_KEY}})  # the pool recovered
        assert await store.get_keys("acme", "pre-key", ["1", "2"]) == {"1": PRE_KEY,
                                                                       "2": PRE_KEY}


async def test_backend_pid_is_kept_on_errors_after_the_connection_is_lost(pg_proxy) -> None:
    async with _opened(pg_proxy.dsn, operation_deadline=10) as store:
        await store.set_keys("acme", {"session": {"s": {"n": 0}}})
        pids = {r for r in [await _pid_of_pool(store)]}
        err = await _lose_connection_mid_flight(
            pg_proxy, lambda: store.set_keys("acme", {"session": {"s": {"n": 1}}}))
        assert err.outcome == "unknown" and err.backend_pid in pids


async def _pid_of_pool(store: PostgresAuthStore) -> int:
    async with store.connection() as conn:
        pid: int = conn.get_server_pid()
    return pid


# -- server conditions -------------------------------------------------------------------------
async def test_too_many_connections_is_retryable_53300(role: LoginRole, db) -> None:
    async with _opened(role.dsn):  # tables created as the role
        pass
    await db.execute(f'ALTER ROLE "{role.name}" CONNECTION LIMIT 0')
    store = await PostgresAuthStore.create(role.dsn)
    try:
        with pytest.raises(StoreUnavailable) as err:
            await store.get_keys("acme", "pre-key", ["1"])
    finally:
        await store.close()
    _assert_retryable(err.value, "failed")
    assert err.value.sqlstate == "53300" and "connection slot" in err.value.message
    with pytest.raises(StoreUnavailable) as opening:
        await PostgresAuthStore.open(role.dsn)
    assert opening.value.sqlstate == "53300"


async def test_read_only_server_refuses_writes_retryably_25006_and_probe_says_so(
        role: LoginRole, db) -> None:
    async with _opened(role.dsn) as store:
        await store.set_keys("acme", {"pre-key": {"1": PRE_KEY}})
        await store.probe()  # writable: passes
    await db.execute(f'ALTER ROLE "{role.name}" SET default_transaction_read_only = on')
    store = await PostgresAuthStore.create(role.dsn)  # new sessions are read-only
    try:
        assert await store.get_keys("acme", "pre-key", ["1"]) == {"1": PRE_KEY}
        with pytest.raises(StoreUnavailable) as write:
            await store.set_keys("acme", {"pre-key": {"2": PRE_KEY}})
        with pytest.raises(StoreUnavailable) as probe:
            await store.probe()
    finally:
        await store.close()
    _assert_retryable(write.value, "failed")  # the server answered: rolled back
    assert write.value.sqlstate == "25006" and "accepts no writes" in write.value.message
    _assert_retryable(probe.value, "failed")
    assert probe.value.sqlstate == "25006" and "read-only" in probe.value.message


async def test_missing_privilege_is_permanent_42501_with_a_grant_hint(role: LoginRole, db) -> None:
    async with _opened(role.dsn) as store:
        await store.set_keys("acme", {"pre-key": {"1": PRE_KEY}})
        owner = await asyncpg.connect(role.dsn)  # an owner may revoke its own privileges
        try:
            await owner.execute(f'REVOKE INSERT, UPDATE ON whatsapp_keys FROM "{role.name}"')
        finally:
            await owner.close()
        assert await store.get_keys("acme", "pre-key", ["1"]) == {"1": PRE_KEY}
        with pytest.raises(StoreRejected) as err:
            await store.set_keys("acme", {"pre-key": {"2": PRE_KEY}})
    _assert_permanent(err.value, "42501", "GRANT")
    assert "permission denied" in err.value.message


async def test_missing_table_is_permanent_42P01_with_a_schema_hint(store, db) -> None:
    await db.execute("DROP TABLE whatsapp_keys")
    with pytest.raises(StoreRejected) as err:
        await store.set_keys("acme", {"pre-key": {"1": PRE_KEY}})
    _assert_permanent(err.value, "42P01", "ensure_schema", "search_path")
    await store.ensure_schema()  # the fix the hint names
    await store.set_keys("acme", {"pre-key": {"1": PRE_KEY}})


async def test_role_without_login_is_permanent_28000(pg_dsn, db) -> None:
    if "search_path=" in pg_dsn:
        pytest.skip("needs a superuser DSN")
    name = f"ah_nologin_{secrets.token_hex(4)}"
    await db.execute(f'CREATE ROLE "{name}" NOLOGIN')
    try:
        with pytest.raises(StoreRejected) as err:
            await PostgresAuthStore.open(with_user(pg_dsn, name, None))
    finally:
        await db.execute(f'DROP ROLE "{name}"')
    _assert_permanent(err.value, "28000", "user")


async def test_unknown_database_is_permanent_3D000(pg_dsn) -> None:
    store = await PostgresAuthStore.create(with_database(pg_dsn, "ah_no_such_db"))
    try:
        with pytest.raises(StoreRejected) as err:
            await store.read_creds("acme")
    finally:
        await store.close()
    _assert_permanent(err.value, "3D000", "database name")


# -- create() while down, probe ------------------------------------------------------------------
async def test_create_while_down_then_ensure_schema_once_back(pg_proxy) -> None:
    async with pg_proxy.faults.sever():
        store = await PostgresAuthStore.create(pg_proxy.dsn)
        try:
            assert store.pool.get_size() == 0  # no connection attempted
            with pytest.raises(StoreUnavailable) as err:
                await store.load("acme")
            _assert_retryable(err.value, "failed")
            with pytest.raises(StoreUnavailable):
                await store.ensure_schema()
            with pytest.raises(StoreUnavailable) as opening:  # open() still fails fast
                await PostgresAuthStore.open(pg_proxy.dsn)
            assert "opening the auth-state store" in opening.value.message
        except BaseException:
            await store.close()
            raise
    try:
        await store.ensure_schema()
        await store.ensure_schema()  # idempotent
        await store.probe()
        await store.set_keys("acme", {"pre-key": {"1": PRE_KEY}})
        assert await store.get_keys("acme", "pre-key", ["1"]) == {"1": PRE_KEY}
    finally:
        await store.close()


async def test_create_needs_no_server_at_all() -> None:
    store = await PostgresAuthStore.create(f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    try:
        with pytest.raises(StoreUnavailable) as err:
            await store.probe()
        assert "refused" in err.value.message and err.value.outcome == "failed"
    finally:
        await store.close()


# -- classify on asyncpg's classes (no I/O) ------------------------------------------------------
@pytest.mark.parametrize(("exc_class", "retryable"), [
    (asyncpg.SerializationError, True), (asyncpg.DeadlockDetectedError, True),
    (asyncpg.QueryCanceledError, True), (asyncpg.CannotConnectNowError, True),
    (asyncpg.ConnectionFailureError, True), (asyncpg.CrashShutdownError, True),
    (asyncpg.IdleSessionTimeoutError, True), (asyncpg.DiskFullError, True),
    (asyncpg.UndefinedColumnError, False), (asyncpg.InvalidPasswordError, False),
    (asyncpg.InvalidCatalogNameError, False), (asyncpg.InvalidTextRepresentationError, False),
])
def test_classify_by_sqlstate(exc_class: type[asyncpg.PostgresError], retryable: bool) -> None:
    err = classify(exc_class("boom"), operation="writing keys", company_id="acme", sent=True)
    assert err.retryable is retryable and err.sqlstate == exc_class.sqlstate
    assert err.message.startswith("writing keys for company 'acme' failed")
    terminated = exc_class.sqlstate[:2] == "08" or exc_class.sqlstate in ("57P02", "57P05")
    assert err.outcome == ("unknown" if terminated else "failed")
    if not retryable:
        assert "retry" not in (err.hint or "").lower()


def test_classify_timeouts_by_what_was_sent() -> None:
    sent = classify(TimeoutError(), operation="saving creds", company_id="acme", sent=True,
                    waited_s=2.01, waiting_for="PostgreSQL's answer")
    assert isinstance(sent, StoreTimeout) and sent.outcome == "unknown" and sent.waited_s == 2.01
    assert "timed out after 2.01 s" in sent.message and "may have been applied" in sent.hint
    not_sent = classify(TimeoutError(), operation="saving creds", company_id="acme", sent=False,
                        waited_s=2.0)
    assert isinstance(not_sent, StoreTimeout) and not_sent.outcome == "failed"


@pytest.mark.parametrize("exc", [
    asyncpg.InterfaceError("cannot call Connection.transaction(): connection has been released "
                           "back to the pool"),
    asyncpg.InterfaceError("cannot perform operation: connection is closed"),
    asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
    asyncpg.InternalClientError("cannot perform operation: another operation is in progress"),
], ids=["released", "closed", "in-progress", "in-progress-internal"])
def test_classify_symptoms_of_a_lost_connection_as_retryable(exc: Exception) -> None:
    sent = classify(exc, operation="writing keys", company_id="acme", sent=True, backend_pid=7)
    _assert_retryable(sent, "unknown")
    assert "connection to PostgreSQL was lost" in sent.message and sent.backend_pid == 7
    not_sent = classify(exc, operation="writing keys", company_id="acme", sent=False)
    _assert_retryable(not_sent, "failed")


def test_classify_trusts_the_lease_that_saw_its_connection_lost() -> None:
    odd = asyncpg.InterfaceError("cannot call Connection.fetch(): some future wording")
    assert isinstance(classify(odd, operation="reading keys", company_id="acme", sent=False),
                      StoreRejected)
    lost = classify(odd, operation="reading keys", company_id="acme", sent=False,
                    connection_lost=True)
    _assert_retryable(lost, "failed")
    assert "lost" in lost.message


async def test_a_closed_store_says_so_and_not_retry(pg_dsn) -> None:
    store = await PostgresAuthStore.open(pg_dsn)
    await store.close()
    with pytest.raises(StoreRejected) as err:
        await store.get_keys("acme", "pre-key", ["1"])
    assert "the store is closed" in err.value.message and "open the store again" in err.value.hint
