"""The load suite: Locust with one user per company against the target, through the fault proxy.

One test, the main load run of the profile (fixtures/load.py): the bridge benchmark, the load
(with a fault under load in ci / thorough, and the scale curve in thorough), its report section
(`record_section("load", ...)`) and figures (steady-state p95 / p99 / error rate, bridge
ratio: gated). It asserts what must hold whatever the gates say: the run happened, every company
set up, the HDR counts equal Locust's own, and under a fault no acknowledged write was lost.
"""

from __future__ import annotations

import logging

import pytest

from harness.load.runner import LoadPlan
from harness.load.session import LoadJob, run_job

pytestmark = pytest.mark.slow
log = logging.getLogger("harness.load")


def test_load_profile(load_params, load_out_dir, pg_server, toxiproxy, request,
                      record_figure, record_section) -> None:
    target = request.config.getoption("--target") or "reference"
    plan = LoadPlan(profile="steady", companies=load_params.companies,
                    duration_s=load_params.duration_s, target=target, fault=load_params.fault,
                    rate=load_params.rate)
    job = LoadJob(plan, scale=load_params.scale, bridge_seconds=load_params.bridge_seconds,
                  bridge_rounds=load_params.bridge_rounds)
    result = run_job(job, pg_server.dsn, toxiproxy, load_out_dir, say=log.info)
    section = result.section
    section["suite_profile"] = load_params.profile
    record_section("load", section)
    for figure in result.figures:
        record_figure(figure)

    main = result.outcomes[[o.plan.companies for o in result.outcomes].index(plan.companies)]
    locust_total = main.result["locust"]["all"]["count"]
    assert section["total"]["count"] == locust_total, "HDR and Locust counted different calls"
    procs = main.result["procs"]
    assert sum(p["ready"] for p in procs) == plan.companies, f"companies not set up: {procs}"
    assert section["total"]["count"] > 0
    fault = section["fault"]
    if fault is not None:
        assert fault["error"] is None, fault["error"]
        assert fault["lost_writes"] == 0, fault
        assert fault["valid"], fault["anomalies"]
