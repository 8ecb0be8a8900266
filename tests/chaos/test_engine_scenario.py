"""The scenario runner end to end: a short sever against the reference store through the real
proxy and PostgreSQL (it fails closed, loses nothing, recovers), a scenario that cannot run is
recorded as skipped, and nothing is left behind."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from harness.chaos.catalog import scenario, scenario_params
from harness.chaos.scenario import ChaosResources, run_scenario
from harness.faults.client import ToxiproxyClient
from harness.infra.postgres import PostgresServer
from harness.targets import resolve_target

pytestmark = pytest.mark.timeout(180)

SHORT = replace(scenario_params("sever", "smoke"), companies=12, warmup_s=1.5, outage_s=2.0,
                recovery_s=2.5, settle_s=5.0)
SECTION_FIELDS = {
    "name", "target", "companies", "repetitions", "mttd_s", "rto_s", "acked_writes",
    "lost_writes", "stale_reads", "indeterminate_writes", "anomalies", "verdict",
    "time_to_first_success_s", "availability", "latency_ms", "journal", "conflicts",
    "pg_recovery_s", "fault", "contrast", "gated", "timeline", "fault_windows"}


@pytest.fixture
def resources(toxiproxy: ToxiproxyClient, pg_server: PostgresServer,
              tmp_path: Path) -> ChaosResources:
    return ChaosResources(toxiproxy=toxiproxy, server_admin_dsn=pg_server.dsn,
                          server_kind=pg_server.kind, process_server=lambda: None,
                          process_skip_reason=lambda: "no server of our own in this test",
                          work_dir=tmp_path)


async def leftovers(admin_dsn: str) -> tuple[list[str], list[str]]:
    conn = await asyncpg.connect(admin_dsn)
    try:
        databases = await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE "
                                     "'chaos%'")
        roles = await conn.fetch("SELECT rolname FROM pg_roles WHERE rolname LIKE 'ah_app_%'")
    finally:
        await conn.close()
    return [r[0] for r in databases], [r[0] for r in roles]


async def test_sever_against_the_reference_store_fails_closed_loses_nothing_and_recovers(
        resources: ChaosResources, toxiproxy: ToxiproxyClient,
        pg_server: PostgresServer) -> None:
    proxies_before = set(toxiproxy.proxies())
    outcome = await run_scenario(scenario("sever"), SHORT, resolve_target("reference"),
                                 resources, contrast=True)
    item = outcome.section

    assert SECTION_FIELDS <= set(item)
    assert outcome.verdict == item["verdict"] == "passed"
    assert item["anomalies"] == {} and item["lost_writes"] == 0
    assert item["acked_writes"] > 0 and item["writes_during_fault"] > 0
    # fails closed: most calls made while PostgreSQL is severed fail
    assert item["availability"]["writes"] < 0.5 and item["availability"]["reads"] < 0.5
    assert item["rto_s"]["p95"] is not None and item["rto_s"]["missing"] == 0
    assert item["mttd_s"]["p95"] is not None and item["mttd_s"]["count"] == SHORT.companies
    assert item["mttd_s"]["p95"] <= SHORT.outage_s  # noticed during the outage

    [window] = item["fault_windows"]
    assert window["kind"] == "sever"
    assert window["start_s"] == pytest.approx(SHORT.warmup_s, abs=1.0)
    assert window["end_s"] - window["start_s"] == pytest.approx(SHORT.outage_s, abs=0.5)
    during = [b for b in item["timeline"] if b["fault"]]
    assert during and sum(b["fail"] + b["info"] for b in during) > 0
    assert sum(b["ok"] for b in item["timeline"] if not b["fault"]) > 0

    rep = outcome.repetitions[0]
    injected = rep.windows[0].injected_ns
    steady_before = [op for op in rep.history.ops()
                     if rep.timeline.origin_ns <= op.invoke_ns < injected and op.complete_ns]
    assert item["latency_ms"]["before"]["count"] == len(steady_before)  # setup excluded

    names = [f.name for f in outcome.figures]
    assert names == ["chaos sever [reference] rto p95", "chaos sever [reference] mttd p95",
                     "chaos sever [reference] lost writes", "chaos sever [reference] slowest call"]
    assert not any(f.gated for f in outcome.figures)  # a contrast row is never gated
    assert outcome.figures[2].value == 0

    assert set(toxiproxy.proxies()) == proxies_before
    assert await leftovers(pg_server.dsn) == ([], [])


async def test_a_process_fault_without_a_server_of_our_own_is_recorded_as_skipped(
        resources: ChaosResources) -> None:
    outcome = await run_scenario(scenario("pg-kill"), SHORT, resolve_target("reference"),
                                 resources)
    assert outcome.verdict == outcome.section["verdict"] == "skipped"
    assert "no server of our own" in outcome.reason and outcome.figures == []
    assert outcome.section["reason"] == outcome.reason
