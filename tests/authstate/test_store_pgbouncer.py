"""The store behind PgBouncer in transaction mode (`pooler="transaction"`), through a real
PgBouncer (fixtures/pgbouncer.py; skipped with how to install it when absent).

Without the option the store cannot even connect there (PgBouncer refuses the
`statement_timeout` startup parameter), and with that removed, asyncpg's statement cache breaks
as soon as transactions land on other server connections."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from harness.authstate import PostgresAuthStore, StoreRejected, StoreUnavailable

PRE_KEY = {"public": bytes(range(32)), "private": bytes(range(32, 64))}


async def test_the_default_store_cannot_connect_through_pgbouncer(pgbouncer_dsn) -> None:
    with pytest.raises((StoreRejected, StoreUnavailable)) as info:
        await PostgresAuthStore.open(pgbouncer_dsn, connect_timeout=2)
    assert "statement_timeout" in str(info.value)  # "unsupported startup parameter"


async def test_the_statement_cache_breaks_behind_pgbouncer(pgbouncer_dsn) -> None:
    """What `pooler="transaction"` turns off: a statement prepared on one server connection is
    executed on another."""
    conns = [await asyncpg.connect(pgbouncer_dsn) for _ in range(8)]
    try:
        async def reads(conn: asyncpg.Connection) -> None:
            for n in range(20):
                await conn.fetchval("SELECT $1::int + 1", n)

        with pytest.raises(asyncpg.PostgresError, match="prepared statement"):
            await asyncio.gather(*(reads(c) for c in conns))
    finally:
        for conn in conns:
            conn.terminate()


@pytest.mark.parametrize("how", ["option", "dsn"])
async def test_every_operation_works_behind_pgbouncer_in_transaction_mode(
        pgbouncer, pgbouncer_dsn, db, how) -> None:
    dsn, options = ((pgbouncer_dsn, {"pooler": "transaction"}) if how == "option"
                    else (pgbouncer_dsn + ("&" if "?" in pgbouncer_dsn else "?")
                          + "pooler=transaction", {}))
    async with await PostgresAuthStore.open(dsn, max_size=10, **options) as store:
        assert store.pooler == "transaction"
        await store.probe()

        async def company(n: int) -> None:  # more clients than PgBouncer's 5 server connections
            c = f"co{n}"
            for round_ in range(5):
                await store.set_keys(c, {"pre-key": {str(i): PRE_KEY for i in range(20)}})
                await store.set_keys(c, {"session": {"s": {"r": round_}}, "pre-key": {"0": None}})
                state = await store.load(c)
                state.creds["round"] = round_
                await state.save_creds()
                assert await state.keys.get("session", ["s"]) == {"s": {"r": round_}}
                assert len(await state.keys.get("pre-key", [str(i) for i in range(20)])) == 19

        await asyncio.gather(*(company(n) for n in range(12)))
        assert len(await store.companies()) == 12
        assert await store.clear_keys("co0") == 20
        await store.delete_company("co1")
        assert await store.read_creds("co1") is None
        assert (await store.load("co2")).creds["round"] == 4
    assert await db.fetchval("SELECT count(*) FROM whatsapp_keys") == 10 * 20


async def test_the_statement_timeout_holds_behind_pgbouncer_and_does_not_leak(
        pgbouncer_dsn, db) -> None:
    async with await PostgresAuthStore.open(pgbouncer_dsn, pooler="transaction",
                                            statement_timeout=0.3,
                                            operation_deadline=10.0) as store:
        await store.set_keys("acme", {"session": {"s": {"a": 1}}})
        async with db.transaction():
            await db.execute("SELECT 1 FROM whatsapp_keys WHERE key_id = 's' FOR UPDATE")
            with pytest.raises(StoreUnavailable) as info:
                await store.set_keys("acme", {"session": {"s": {"a": 2}}})
        assert info.value.sqlstate == "57014"  # PostgreSQL's statement timeout, not ours
        assert info.value.outcome == "failed"
        assert await store.get_keys("acme", "session", ["s"]) == {"s": {"a": 1}}
    # SET LOCAL ended with its transaction: other clients of the same server connections see
    # the server's default
    plain = await asyncpg.connect(pgbouncer_dsn, statement_cache_size=0)
    try:
        assert {await plain.fetchval("SHOW statement_timeout") for _ in range(10)} == {"0"}
    finally:
        await plain.close()
