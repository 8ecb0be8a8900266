"""A real load run: Locust (2 worker processes) -> fault proxy -> embedded PostgreSQL, with the
proxy severed for 3 s in the middle. What it must show: the merged counts are exactly the sum of
what each worker recorded (and what Locust counted), every company set up, the fault window is
where it was scheduled, failures fall in it, the checker finds no lost write and the recovery
is observed (the store's own beside it)."""

from __future__ import annotations

import json

import pytest

from harness.load.faults import parse_fault
from harness.load.runner import LoadPlan
from harness.load.session import LoadJob, run_job

pytestmark = pytest.mark.slow


def test_two_process_run_under_a_sever_merges_exactly_and_loses_nothing(
        pg_server, toxiproxy, tmp_path) -> None:
    plan = LoadPlan(profile="steady", companies=20, duration_s=16.0, processes=2,
                    fault=parse_fault("sever@6s+3s", 16.0))
    result = run_job(LoadJob(plan, bridge_seconds=None), pg_server.dsn, toxiproxy, tmp_path)
    section, outcome = result.section, result.outcomes[0]
    procs = outcome.result["procs"]

    assert len(procs) == 2 and section["processes"] == 2
    assert section["total"]["count"] == sum(p["recorded"] for p in procs)
    assert section["total"]["count"] == outcome.result["locust"]["all"]["count"]
    assert section["total"]["failures"] == outcome.result["locust"]["all"]["failures"]
    assert sum(p["ready"] for p in procs) == 20

    fault = section["fault"]
    assert fault["error"] is None
    start, end = fault["window"]
    assert 5.5 <= start <= 8.0 and 2.5 <= end - start <= 5.0
    assert section["phases"]["during"]["failures"] > 0  # the reference store fails closed
    assert section["steady"]["failures"] == 0
    assert fault["lost_writes"] == 0 and fault["valid"], fault["anomalies"]
    assert fault["rto_s"]["count"] == 20
    # recovery under load is observed from outside (the observer read PostgreSQL itself),
    # the store's own figures are only reported beside it
    assert fault["observer"]["rounds"] > 0 and fault["observer"]["mode"] == "sql"
    assert fault["rto_s"]["missing"] == 0, fault["rto_s"]
    assert fault["reported"]["rto_s"]["count"] == 20

    assert (tmp_path / "locust.html").exists() and (tmp_path / "locust_stats.csv").exists()
    assert len(list((tmp_path / "history").glob("history-*.jsonl"))) == 2
    json.dumps(section)  # report-ready
