"""The reference store against real PostgreSQL: every guarantee in its docstring."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator

import asyncpg
import pytest
from store_testkit import terminate_when_blocked

from harness.authstate import (
    InvalidCompanyId,
    InvalidKey,
    PostgresAuthStore,
    StoreRejected,
    StoreTimeout,
    StoreUnavailable,
    UnsupportedValue,
)
from harness.authstate import key_types as kt
from harness.authstate.schema import migrate

PRE_KEY = {"public": bytes(range(32)), "private": bytes(range(32, 64))}



async def _count(db: asyncpg.Connection, table: str) -> int:
    return await db.fetchval(f"SELECT count(*) FROM {table}")


async def _fail_inserts_of(db: asyncpg.Connection, key_id: str) -> None:
    """A real server-side failure: inserting a key with this id raises 'injected failure'."""
    await db.execute(f"""
        CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.key_id = '{key_id}' THEN RAISE EXCEPTION 'injected failure'; END IF;
        RETURN NEW; END $$;
        CREATE TRIGGER boom BEFORE INSERT ON whatsapp_keys FOR EACH ROW EXECUTE FUNCTION boom();
    """)


@contextlib.asynccontextmanager
async def _single_connection_store(
        dsn: str) -> AsyncIterator[tuple[PostgresAuthStore, list[str]]]:
    """A store whose pool holds one connection, and the list of every query that connection runs
    from here on (asyncpg's query logger): round trips counted, not timed."""
    single = await PostgresAuthStore.open(dsn, min_size=1, max_size=1)
    queries: list[str] = []
    try:
        async with single.pool.acquire() as conn:
            conn.add_query_logger(lambda record: queries.append(record.query))
        yield single, queries
    finally:
        await single.close()


async def test_open_is_idempotent_and_safe_concurrently(pg_dsn: str, db) -> None:
    stores = await asyncio.gather(*(PostgresAuthStore.open(pg_dsn) for _ in range(5)))
    try:
        await stores[0].set_keys("acme", {"pre-key": {"1": PRE_KEY}})
        await stores[1].write_creds("acme", {"registered": True})
    finally:
        for s in stores:
            await s.close()
    async with await PostgresAuthStore.open(pg_dsn) as again:  # migrating again keeps the data
        assert await again.get_keys("acme", "pre-key", ["1"]) == {"1": PRE_KEY}
        assert await again.read_creds("acme") == {"registered": True}
    assert await db.fetch("SELECT version FROM authstate_harness_schema") == [(1,)]
    tables = await db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                            "ORDER BY 1")
    assert [t[0] for t in tables] == ["authstate_harness_schema", "whatsapp_auth",
                                      "whatsapp_keys"]
    indexes = await db.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'whatsapp_keys' "
                             "AND schemaname = current_schema() ORDER BY 1")
    assert [i[0] for i in indexes] == ["whatsapp_keys_expires_at_idx", "whatsapp_keys_pkey"]


async def test_new_company_gets_fresh_creds_that_are_not_written(store, db) -> None:
    state = await store.load("acme")
    assert set(state.creds) >= {"noiseKey", "signedIdentityKey", "signedPreKey",
                                "registrationId", "advSecretKey"}
    assert len(state.creds["noiseKey"]["private"]) == 32
    assert await _count(db, "whatsapp_auth") == 0
    await state.save_creds()
    assert (await store.load("acme")).creds == state.creds


async def test_creds_round_trip_bytes_exactly(store) -> None:
    state = await store.load("acme")
    state.creds["me"] = {"id": "5511999999999:12@s.whatsapp.net", "name": "Zoë 🚀"}
    state.creds["routingInfo"] = bytes(range(256))
    await state.save_creds()
    loaded = await store.load("acme")
    assert loaded.creds == state.creds
    assert loaded.creds["routingInfo"] == bytes(range(256))


async def test_error_while_loading_creds_raises_and_never_gives_fresh_creds(pg_dsn, db) -> None:
    """A DB blip (here: a lock held by another session, so our query times out) must not be
    mistaken for "no creds": fresh creds saved over paired ones would log the account out."""
    store = await PostgresAuthStore.open(pg_dsn, operation_deadline=0.5)
    try:
        state = await store.load("acme")
        await state.save_creds()
        original = state.creds
        async with db.transaction():
            await db.execute("LOCK TABLE whatsapp_auth IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(StoreTimeout) as err:
                await store.load("acme")
        assert "loading creds" in str(err.value) and err.value.hint
        assert err.value.outcome == "failed" and err.value.retryable
        assert (await store.load("acme")).creds == original
    finally:
        await store.close()


async def test_connection_killed_mid_query_surfaces_as_store_unavailable(store, db) -> None:
    """Deterministic: our read is parked behind a lock, then its backend is terminated while the
    query is in flight (killing idle connections instead races the pool's liveness check)."""
    await store.set_keys("acme", {"pre-key": {"1": PRE_KEY}})
    err = await terminate_when_blocked(db, lambda: store.get_keys("acme", "pre-key", ["1"]))
    assert isinstance(err, StoreUnavailable) and err.hint
    # the pool replaces the dead connection: the next call works and the data is intact
    assert await store.get_keys("acme", "pre-key", ["1"]) == {"1": PRE_KEY}


async def test_keys_get_omits_missing_ids(store) -> None:
    await store.set_keys("acme", {"pre-key": {"1": PRE_KEY, "3": PRE_KEY}})
    assert await store.get_keys("acme", "pre-key", ["1", "2", "3", "4"]) == {"1": PRE_KEY,
                                                                             "3": PRE_KEY}
    assert await store.get_keys("acme", "pre-key", []) == {}


@pytest.mark.parametrize("falsy", [None, False, 0, 0.0, ""])
async def test_js_falsy_value_deletes(store, falsy) -> None:
    await store.set_keys("acme", {"pre-key": {"1": PRE_KEY}})
    await store.set_keys("acme", {"pre-key": {"1": falsy}})
    assert await store.get_keys("acme", "pre-key", ["1"]) == {}


@pytest.mark.parametrize("truthy_empty", [b"", {}, []])
async def test_values_truthy_in_js_are_stored_even_if_empty(store, truthy_empty) -> None:
    await store.set_keys("acme", {"device-list": {"u": truthy_empty}})
    assert await store.get_keys("acme", "device-list", ["u"]) == {"u": truthy_empty}


async def test_one_set_spans_types_and_mixes_writes_and_deletes(store) -> None:
    await store.set_keys("acme", {"pre-key": {"1": PRE_KEY, "2": PRE_KEY}})
    await store.set_keys("acme", {
        "pre-key": {"1": None},
        "session": {"123_1.2": {"_sessions": {"BQ==": {"registrationId": 7}}, "version": "v1"}},
        "app-state-sync-key": {"AAAAAP/+=": {"keyData": b"\x01" * 32, "timestamp": 5}},
    })
    assert await store.get_keys("acme", "pre-key", ["1", "2"]) == {"2": PRE_KEY}
    assert (await store.get_keys("acme", "app-state-sync-key", ["AAAAAP/+="]))[
        "AAAAAP/+="]["keyData"] == b"\x01" * 32


async def test_812_pre_keys_are_one_statement(pg_dsn, db) -> None:
    """Batching, shown by the queries the connection actually ran and by the rows' xmin (the
    id of the transaction that wrote them), not by timing."""
    async with _single_connection_store(pg_dsn) as (single, queries):
        keys = {str(i): PRE_KEY for i in range(1, 813)}
        await single.set_keys("acme", {"pre-key": keys})
        assert len(queries) == 1 and "unnest" in queries[0], queries
        assert len(await single.get_keys("acme", "pre-key", list(keys))) == 812
    assert await db.fetchval("SELECT count(DISTINCT xmin::text) FROM whatsapp_keys") == 1


async def test_a_mixed_write_is_one_statement_after_the_company_lock(pg_dsn, db) -> None:
    """Baileys' pkmsg write (a session upsert and a pre-key delete): the transaction's opening
    round trip takes the company's lock, then one statement, then COMMIT; rows of both parts
    are written by one transaction."""
    async with _single_connection_store(pg_dsn) as (single, queries):
        await single.set_keys("acme", {"pre-key": {"1": PRE_KEY, "2": PRE_KEY, "3": PRE_KEY}})
        # a connection's first use of the statement also reads int4[]'s type (asyncpg, once)
        await single.set_keys("acme", {"session": {"b.0": {"v": 1}}, "pre-key": {"3": None}})
        queries.clear()
        await single.set_keys("acme", {"session": {"a.0": {"v": 1}}, "pre-key": {"1": None}})
        assert len(queries) == 3, [" ".join(q.split())[:70] for q in queries]
        assert queries[0].startswith("BEGIN; SELECT pg_advisory_xact_lock(")
        assert "DELETE" in queries[1] and "INSERT" in queries[1] and queries[2] == "COMMIT"
    assert sorted(await db.fetch("SELECT key_type, key_id FROM whatsapp_keys")) == [
        ("pre-key", "2"), ("session", "a.0"), ("session", "b.0")]


async def test_release_rolls_back_without_a_reset_round_trip(pg_dsn, db) -> None:
    """One round trip per operation: asyncpg's per-release reset query is skipped, while a
    transaction a borrower left open is still rolled back."""
    async with _single_connection_store(pg_dsn) as (single, queries):
        async with single.pool.acquire() as conn:
            await conn.execute("BEGIN")
            await conn.execute("INSERT INTO whatsapp_auth (company_id, creds) VALUES ('x', '{}')")
        assert queries[-1] == "ROLLBACK"
        queries.clear()
        assert await single.get_keys("acme", "pre-key", ["1"]) == {}
        assert len(queries) == 1, queries
    assert await _count(db, "whatsapp_auth") == 0


async def test_multi_statement_set_is_atomic(store, db) -> None:
    """2,501 rows take three statements; a real failure in the last rolls back all of them
    (an error raised by the server's code is permanent: outcome failed, not retryable)."""
    await _fail_inserts_of(db, "boom")
    keys = {f"{i:05d}": PRE_KEY for i in range(2499)} | {"boom": PRE_KEY}
    with pytest.raises(StoreRejected) as err:
        await store.set_keys("acme", {"pre-key": keys, "session": {"s": {"a": 1}}})
    assert err.value.outcome == "failed" and "injected failure" in err.value.message
    assert await _count(db, "whatsapp_keys") == 0
    await store.set_keys("acme", {"pre-key": {"1": PRE_KEY}})  # the connection was rolled back
    assert await _count(db, "whatsapp_keys") == 1


async def test_invalid_value_anywhere_means_nothing_written(store, db) -> None:
    with pytest.raises(UnsupportedValue):
        await store.set_keys("acme", {"pre-key": {"1": PRE_KEY},
                                      "session": {"s": {"name": "nul\x00inside"}}})
    with pytest.raises(InvalidKey):
        await store.set_keys("acme", {"pre-key": {"1": PRE_KEY, 2: PRE_KEY}})
    assert await _count(db, "whatsapp_keys") == 0


async def test_a_value_refused_in_a_bulk_write_leaves_nothing_written(store, db) -> None:
    """The 812th pre-key cannot be stored: the codec refuses it before any I/O, nothing is
    written and the store stays usable."""
    keys = {f"{i:04d}": PRE_KEY for i in range(811)} | {"9999": {"name": "nul\x00inside"}}
    with pytest.raises(UnsupportedValue):
        await store.set_keys("acme", {"pre-key": keys})
    assert await _count(db, "whatsapp_keys") == 0
    await store.set_keys("acme", {"pre-key": {"1": PRE_KEY}})
    assert await store.get_keys("acme", "pre-key", ["1"]) == {"1": PRE_KEY}


async def test_a_large_mixed_write_applies_upserts_and_deletes_together(store, db) -> None:
    await store.set_keys("acme", {"session": {"old": {"a": 1}}, "pre-key": {"gone": PRE_KEY}})
    pre_keys = {str(i): {"public": bytes([i % 256]) * 32, "private": b"p"} for i in range(700)}
    sessions = {f"5511{i}.0": {"n": i} for i in range(300)}
    await store.set_keys("acme", {"pre-key": pre_keys | {"gone": None},
                                  "session": sessions | {"old": None}})
    assert await store.get_keys("acme", "pre-key", [*pre_keys, "gone"]) == pre_keys
    assert await store.get_keys("acme", "session", [*sessions, "old"]) == sessions
    assert await _count(db, "whatsapp_keys") == 1000


@pytest.mark.parametrize("bad", ["", "a" * 51, "acme corp", "x'; DROP TABLE whatsapp_keys;--",
                                 "acme\n", "ａｃｍｅ", "../etc", None, 42])
async def test_invalid_company_ids_rejected_and_nothing_written(store, db, bad) -> None:
    for call in (store.load(bad), store.set_keys(bad, {"pre-key": {"1": PRE_KEY}}),
                 store.write_creds(bad, {"a": 1}), store.get_keys(bad, "pre-key", ["1"])):
        with pytest.raises(InvalidCompanyId):
            await call
    assert await _count(db, "whatsapp_keys") == 0 and await _count(db, "whatsapp_auth") == 0
    assert await db.fetchval("SELECT to_regclass('whatsapp_keys')") is not None


async def test_tenants_are_isolated(store) -> None:
    await store.set_keys("a", {"pre-key": {"1": PRE_KEY}})
    await store.set_keys("b", {"pre-key": {"1": {"public": b"b", "private": b"b"}}})
    await store.clear_keys("a")
    assert await store.get_keys("a", "pre-key", ["1"]) == {}
    assert await store.get_keys("b", "pre-key", ["1"]) == {"1": {"public": b"b", "private": b"b"}}
    await store.write_creds("b", {"registered": True})
    await store.delete_company("b")
    assert await store.read_creds("b") is None
    assert await store.companies() == []


async def test_expiry_follows_key_type(store, db) -> None:
    """`expires_at` is the write time plus the type's TTL (the TTLs themselves are checked
    against the documentation in test_key_types.py); a type Baileys adds later gets one too."""
    types = [*kt.KEY_TYPES, "some-future-type"]
    await store.set_keys("acme", {t: {"k": {"v": 1}} for t in types})
    rows = dict(await db.fetch("SELECT key_type, expires_at - updated_at FROM whatsapp_keys"))
    assert rows == {t: dt.timedelta(seconds=kt.ttl_seconds(t)) for t in types}
    assert len(set(rows.values())) == 2  # short-lived protocol material and the rest


async def test_writes_of_one_company_apply_in_call_order(store) -> None:
    """50 concurrent saves through a pool of 10: the last call's value is what persists."""
    state = await store.load("acme")

    async def save(n: int) -> None:
        state.creds["accountSyncCounter"] = n
        await state.save_creds()

    await asyncio.gather(*(save(n) for n in range(50)))
    assert (await store.read_creds("acme"))["accountSyncCounter"] == 49
    await asyncio.gather(*(store.set_keys("acme", {"session": {"s": {"n": n}}})
                           for n in range(50)))
    assert await store.get_keys("acme", "session", ["s"]) == {"s": {"n": 49}}


async def test_migrates_a_node_service_schema_without_expiry(pg_dsn, db) -> None:
    await db.execute("""
        CREATE TABLE whatsapp_auth (company_id VARCHAR(50) PRIMARY KEY, creds JSONB NOT NULL);
        CREATE TABLE whatsapp_keys (company_id VARCHAR(50), key_type VARCHAR(64), key_id TEXT,
                                    value JSONB, UNIQUE (company_id, key_type, key_id));
        INSERT INTO whatsapp_keys VALUES ('acme', 'pre-key', '1',
            '{"public": {"type": "Buffer", "data": [1, 2]}, "private": {"0": 3}}');
    """)
    store = await PostgresAuthStore.open(pg_dsn)
    try:
        assert await store.get_keys("acme", "pre-key", ["1"]) == {
            "1": {"public": b"\x01\x02", "private": b"\x03"}}
        await store.set_keys("acme", {"pre-key": {"2": PRE_KEY}})
    finally:
        await store.close()


async def test_schema_without_unique_key_is_refused_with_a_fix(pg_dsn, db) -> None:
    await db.execute("CREATE TABLE whatsapp_keys (company_id TEXT, key_type TEXT, key_id TEXT, "
                     "value JSONB)")
    with pytest.raises(StoreRejected) as err:
        await migrate(db)
    assert "UNIQUE" in err.value.hint


async def test_unreachable_database_is_a_clear_error() -> None:
    from harness.infra.ports import free_port

    with pytest.raises(StoreUnavailable) as err:
        await PostgresAuthStore.open(f"postgresql://postgres@127.0.0.1:{free_port()}/x",
                                     connect_timeout=2)
    assert "opening the auth-state store" in err.value.message and err.value.hint
    assert err.value.outcome == "failed" and err.value.retryable


async def test_a_write_cancelled_inside_its_transaction_leaves_nothing_and_the_pool_usable(
        pg_dsn, db) -> None:
    """2500 pre-keys are three statements in one transaction. The second blocks on a row the
    test holds; cancelling the call then must roll back the first statement's 1000 rows (not
    leave them in a transaction the next operation on that pooled connection would commit)."""
    async with _single_connection_store(pg_dsn) as (single, _):
        await single.set_keys("acme", {"pre-key": {"1500": PRE_KEY}})
        keys = {f"{i:04d}": PRE_KEY for i in range(2500)}
        async with db.transaction():
            await db.execute("SELECT 1 FROM whatsapp_keys WHERE key_id = '1500' FOR UPDATE")
            task = asyncio.ensure_future(single.set_keys("acme", {"pre-key": keys}))
            while not await db.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND application_name = 'authstate-harness'"):
                assert not task.done(), task
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        await single.set_keys("acme", {"session": {"s": {"a": 1}}})  # the pool's one slot
        assert sorted(await db.fetch("SELECT key_type, key_id FROM whatsapp_keys")) == [
            ("pre-key", "1500"), ("session", "s")]
        await single.set_keys("acme", {"pre-key": keys})
    assert await _count(db, "whatsapp_keys") == 2501
