"""Per-company write locks exist only while a write holds or awaits them (a long-lived store
used to keep one lock per company it ever saw)."""

from __future__ import annotations

import asyncio
from time import monotonic

import pytest

from harness.authstate import PostgresAuthStore, ResilientAuthStore, StoreTimeout
from harness.authstate.company_locks import CompanyLocks


async def test_an_idle_company_leaves_no_entry_and_waiters_keep_call_order() -> None:
    locks = CompanyLocks()
    order: list[int] = []

    async def write(n: int) -> None:
        async with locks.hold("acme"):
            order.append(n)
            await asyncio.sleep(0)

    await asyncio.gather(*(write(n) for n in range(20)))
    assert order == list(range(20))
    assert len(locks) == 0


async def test_a_waiter_that_gives_up_leaves_no_entry_behind() -> None:
    locks = CompanyLocks()
    async with locks.hold("acme"):
        with pytest.raises(TimeoutError):
            async with locks.hold("acme", until=monotonic() + 0.01):
                pass
        assert len(locks) == 1  # the holder's own entry
    assert len(locks) == 0


async def test_the_store_keeps_no_lock_for_companies_without_a_write_in_flight(pg_dsn) -> None:
    async with await PostgresAuthStore.open(pg_dsn) as store:
        for n in range(300):
            company = f"co{n}"
            await store.set_keys(company, {"session": {"s": {"n": n}}, "pre-key": {"1": None}})
            await store.load(company)
            await store.write_creds(company, {"n": n})
        await store.clear_keys("co1")
        await store.delete_company("co2")
        async with store.exclusive("co3"):
            assert (len(store._key_locks), len(store._creds_locks)) == (1, 1)
        assert (len(store._key_locks), len(store._creds_locks)) == (0, 0)


async def test_a_write_that_timed_out_behind_another_leaves_no_lock(pg_dsn) -> None:
    async with await PostgresAuthStore.open(pg_dsn, operation_deadline=0.2) as store:
        async with store.exclusive("acme"):
            with pytest.raises(StoreTimeout, match="earlier writes"):
                await store.set_keys("acme", {"session": {"s": {"a": 1}}})
        assert (len(store._key_locks), len(store._creds_locks)) == (0, 0)


async def test_the_resilient_store_keeps_no_lock_for_idle_companies(pg_dsn, tmp_path) -> None:
    store = await ResilientAuthStore.open(pg_dsn, cache_dir=tmp_path / "cache")
    try:
        for n in range(100):
            await store.set_keys(f"co{n}", {"session": {"s": {"n": n}}})
            await store.write_creds(f"co{n}", {"n": n})
        assert (len(store._key_locks), len(store._creds_locks)) == (0, 0)
    finally:
        await store.close()
