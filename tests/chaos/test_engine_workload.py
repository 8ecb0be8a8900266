"""The workload and its driver: a well-formed history against the reference store on a healthy
database (the checker finds nothing), the bulk-write hook, and how the driver records errors
and hung calls."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from harness.authstate import PostgresAuthStore
from harness.chaos.workload import FULL_PRE_KEYS, Workload, WorkloadConfig
from harness.metrics.checker import check
from harness.metrics.history import CREDS, WRITE_KEYS, History
from harness.observe.final_read import final_read
from harness.target_driver import Driver

COMPANIES = [f"co{i}" for i in range(6)]
CONFIG = WorkloadConfig(message_rate_hz=10, full_pre_key_companies=1, pre_keys=12,
                        contacts=4, groups=2, group_size=3, seed=3)


async def run_workload(store: PostgresAuthStore, history: History,
                       seconds: float) -> Workload:
    workload = Workload(store, COMPANIES, history, config=CONFIG, run_tag="t")
    await workload.setup()
    workload.start()
    await asyncio.sleep(seconds)
    await workload.stop()
    return workload


async def test_workload_on_a_healthy_database_records_a_history_the_checker_accepts(
        store: PostgresAuthStore, pg_dsn: str) -> None:
    history = History()
    workload = await run_workload(store, history, 2.0)
    ops = history.ops()
    assert ops and all(op.outcome == "ok" for op in ops)
    assert {op.company for op in ops} == set(COMPANIES)
    kinds = Counter(op.f for op in ops)
    assert kinds["read-keys"] and kinds["write-keys"] and kinds["write-creds"]
    assert kinds["read-creds"] >= len(COMPANIES)  # every company loaded at setup
    assert workload.messages["outgoing"] and workload.messages["incoming"]
    # setup: paired creds and the full 812-pre-key upload for the first company
    first_writes = [op for op in ops if op.company == "co0" and op.f == WRITE_KEYS]
    assert len(first_writes[0].keys) == FULL_PRE_KEYS
    reads_of_creds = [op for op in ops if op.f == "read-creds"]
    assert all(op.complete_meta.get("fresh") for op in reads_of_creds[:len(COMPANIES)])

    final = await final_read(pg_dsn, COMPANIES)
    assert all(final.final[(c, CREDS)] is not None for c in COMPANIES)
    assert not any(meta["fresh"] for meta in final.final_meta.values())
    result = check(history, final.final, final_meta=final.final_meta)
    assert result.valid, result.summary()
    assert result.acked_writes == kinds["write-keys"] + kinds["write-creds"]
    assert result.lost_writes == 0 and result.indeterminate_writes == 0


async def test_bulk_write_hook_puts_812_new_pre_keys_in_flight(
        store: PostgresAuthStore, pg_dsn: str) -> None:
    history = History()
    workload = Workload(store, COMPANIES, history, config=CONFIG, run_tag="b")
    await workload.setup()
    request = workload.bulk_write()
    await asyncio.wait_for(request.invoked.wait(), 10)
    await asyncio.wait_for(request.done.wait(), 10)
    assert request.outcome == "ok"
    bulk = history.ops()[-1]
    assert bulk.f == WRITE_KEYS and len(bulk.keys) == FULL_PRE_KEYS
    assert {k[1] for k in bulk.keys} == {str(i) for i in range(813, 813 + FULL_PRE_KEYS)}
    final = await final_read(pg_dsn, COMPANIES)
    assert all(final.final.get((request.company, k)) == bulk.value[k] for k in bulk.keys)


class _State:
    """A stand-in auth state whose calls do what each driver test needs (no database: these
    tests are about bookkeeping, not resilience)."""

    def __init__(self, behaviour: Any) -> None:
        self.creds: dict[str, Any] = {"me": {"id": "x"}, "registered": True}
        self.keys = self
        self._behaviour = behaviour

    async def get(self, key_type: str, ids: list[str]) -> dict[str, Any]:
        return await self._behaviour()

    async def set(self, data: Any) -> None:
        await self._behaviour()

    async def save_creds(self) -> None:
        await self._behaviour()


class _Failed(Exception):
    outcome = "failed"


class _Unknown(Exception):
    outcome = "unknown"


async def test_driver_records_fail_for_definite_failures_and_info_for_unknown_ones() -> None:
    history = History()
    driver = Driver(object(), history, op_timeout_s=5)

    async def fails() -> None:
        raise _Failed("refused before sending")

    async def unknown() -> None:
        raise _Unknown("connection lost after sending")

    async def broken() -> None:
        raise RuntimeError("a bug in the target")

    assert await driver.set(1, "c", _State(fails), {"session": {"a": {"x": 1}}}) == "fail"
    assert await driver.set(2, "c", _State(unknown), {"session": {"a": {"x": 2}}}) == "info"
    assert await driver.set(3, "c", _State(broken), {"session": {"a": {"x": 3}}}) == "info"
    outcome, got = await driver.get(4, "c", _State(unknown), "session", ["a"])
    assert (outcome, got) == ("fail", None)  # reads change nothing: an error is a fail
    assert [op.outcome for op in history.ops()] == ["fail", "info", "info", "fail"]
    assert driver.stats.errors == Counter({"_Unknown": 2, "_Failed": 1, "RuntimeError": 1})


async def test_driver_cancels_a_hung_call_and_records_it_as_info() -> None:
    history = History()
    driver = Driver(object(), history, op_timeout_s=0.2)

    async def hangs() -> None:
        await asyncio.sleep(3600)

    assert await driver.save_creds(1, "c", _State(hangs)) == "info"
    outcome, _ = await driver.get(2, "c", _State(hangs), "session", ["a"])
    assert outcome == "fail"
    assert driver.stats.hung == 2
    assert all("driver timeout" in (op.error or "") for op in history.ops())


async def test_driver_records_reads_as_digests_with_absent_keys_as_none() -> None:
    history = History()

    async def one_present() -> dict[str, Any]:
        return {"a": {"v": 1}}

    driver = Driver(object(), history)
    await driver.get(1, "c", _State(one_present), "session", ["a", "b"])
    op = history.ops()[0]
    assert op.result is not None
    assert op.result[("session", "b")] is None
    assert isinstance(op.result[("session", "a")], str) and len(op.result[("session", "a")]) == 16
