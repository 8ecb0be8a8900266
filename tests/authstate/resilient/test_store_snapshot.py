"""`snapshot(company_id)`: what PostgreSQL holds, read directly, whatever the store's breaker
says. The chaos observer reads a target built on the resilient store this way: a fresh
instance on a read-only session never leaves "degraded", so its ordinary reads never reach
PostgreSQL."""

from __future__ import annotations

import pytest
from resilient_testkit import wait_for_mode

from harness.authstate import StoreUnavailable
from harness.observe.readonly import read_only_dsn


async def test_snapshot_reads_postgres_even_from_a_degraded_read_only_instance(
        pg_proxy, open_store) -> None:
    writer = await open_store(pg_proxy.dsn)
    await writer.write_creds("acme", {"me": {"id": "1"}})
    await writer.set_keys("acme", {"session": {"a": {"n": 1}}, "pre-key": {"7": {"k": 7}}})
    async with pg_proxy.faults.sever():
        await writer.set_keys("acme", {"session": {"a": {"n": 2}}})  # journaled only
        with pytest.raises(StoreUnavailable):
            await writer.snapshot("acme")  # PostgreSQL away: no answer from the journal
    await wait_for_mode(writer, "normal")
    reader = await open_store(read_only_dsn(pg_proxy.direct_dsn))
    assert reader.status()["mode"] == "degraded"  # its probe wants a writable server
    snap = await reader.snapshot("acme")
    assert snap == {"creds": {"me": {"id": "1"}},
                    "keys": {"session": {"a": {"n": 2}}, "pre-key": {"7": {"k": 7}}}}
    assert await reader.snapshot("nobody") == {"creds": None, "keys": {}}
