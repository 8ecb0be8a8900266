"""Chaos repetitions are independent draws (issue 16 §1): each has its own seed and jittered
fault start, derived from the run's seed so `--seed` replays them, and the gates' intervals
come from the spread between repetitions, never from the companies of one fault."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from harness.chaos.catalog import repetition_draw, scenario, scenario_params
from harness.chaos.results import repetition_intervals
from harness.chaos.scenario import ChaosResources, run_scenario
from harness.faults.client import ToxiproxyClient
from harness.infra.postgres import PostgresServer
from harness.metrics.intervals import batch_interval
from harness.targets import resolve_target


def test_a_run_seed_replays_every_repetition_and_a_new_one_draws_fresh_ones() -> None:
    first = [repetition_draw(1234, "sever", "resilient", i, 1.0) for i in range(3)]
    assert first == [repetition_draw(1234, "sever", "resilient", i, 1.0) for i in range(3)]
    assert len({seed for seed, _ in first}) == 3  # the repetitions differ from each other
    assert all(0.0 <= jitter <= 1.0 for _, jitter in first)
    assert len({jitter for _, jitter in first}) == 3
    other = [repetition_draw(1235, "sever", "resilient", i, 1.0) for i in range(3)]
    assert {s for s, _ in other}.isdisjoint({s for s, _ in first})
    assert repetition_draw(1234, "blackhole", "resilient", 0, 1.0) != first[0]
    assert repetition_draw(None, "sever", "resilient", 2, 1.0) == (2, 0.0)  # direct callers


def test_intervals_come_from_per_repetition_p95s_not_from_the_companies_of_one_fault() -> None:
    # One repetition whose 100 companies spread widely is still one draw: no interval at all.
    pooled = {"rto_s": {"p95": 0.9}, "mttd_s": {"p95": 0.04}}
    single = repetition_intervals(pooled, [{"rto_s": {"p95": 0.9}, "mttd_s": {"p95": 0.04}}])
    assert single["rto_s"]["interval"] is None
    reps = [{"rto_s": {"p95": v}, "mttd_s": {"p95": 0.04}} for v in (0.7, 0.9, 1.0)]
    got = repetition_intervals(pooled, reps)
    lo, hi = batch_interval(0.9, [0.7, 0.9, 1.0])  # type: ignore[misc]
    assert got["rto_s"]["interval"] == [round(lo, 3), round(hi, 3)]
    assert got["rto_s"]["per_repetition_p95"] == [0.7, 0.9, 1.0]
    assert got["mttd_s"]["interval"] == [0.04, 0.04]  # identical repetitions: a point
    never = repetition_intervals(pooled, [*reps, {"rto_s": {"p95": None}}])
    assert never["rto_s"]["interval"] is None  # a repetition that never recovered


@pytest.fixture
def resources(toxiproxy: ToxiproxyClient, pg_server: PostgresServer,
              tmp_path: Path) -> ChaosResources:
    return ChaosResources(toxiproxy=toxiproxy, server_admin_dsn=pg_server.dsn,
                          server_kind=pg_server.kind, process_server=lambda: None,
                          work_dir=tmp_path)


@pytest.mark.timeout(240)
async def test_repetitions_record_seed_and_jitter_and_one_more_runs_while_a_gate_straddles(
        resources: ChaosResources) -> None:
    params = replace(scenario_params("sever", "ci"), companies=8, repetitions=2,
                     warmup_s=0.5, outage_s=1.0, recovery_s=1.5, settle_s=5.0,
                     fault_jitter_s=0.4)
    asked: list[int] = []

    def straddling(reps: list) -> bool:  # type: ignore[type-arg]
        asked.append(len(reps))
        return True  # as if the interval still straddled: the budget must stop it

    outcome = await run_scenario(scenario("sever"), params, resolve_target("resilient"),
                                 resources, run_seed=99, more_repetitions=1,
                                 more_wanted=straddling)
    item = outcome.section
    assert asked == [2]  # asked after the planned repetitions, not again past the budget
    assert item["repetitions"] == 3 and item["repetitions_planned"] == 2
    drawn = [repetition_draw(99, "sever", "resilient", i, 0.4) for i in range(3)]
    assert item["seed"] == [s for s, _ in drawn]
    assert item["fault_jitter_s"] == [j for _, j in drawn]
    for rep, (_, jitter) in zip(outcome.repetitions, drawn, strict=True):
        injected_after_s = (rep.windows[0].injected_ns - rep.timeline.origin_ns) / 1e9
        assert injected_after_s >= params.warmup_s + jitter - 0.05  # the start moved
    rto = item["intervals"]["rto_s"]
    assert len(rto["per_repetition_p95"]) == 3 and rto["interval"] is not None
    [figure] = [f for f in outcome.figures if f.name.endswith("rto p95")]
    assert figure.interval == tuple(rto["interval"])
    assert figure.context["measured_more"] == {"added": 1, "what": "repetitions"}


def test_ci_and_predeploy_repeat_every_gated_scenario_at_least_three_times() -> None:
    from harness.chaos.catalog import scenarios_for

    for profile in ("ci", "predeploy"):
        for info in scenarios_for(profile):
            params = scenario_params(info.name, profile)
            assert params.repetitions >= 3, (profile, info.name)
            assert params.fault_jitter_s > 0
    assert scenario_params("sever", "quick").repetitions >= 2
