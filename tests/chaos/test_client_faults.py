"""The client-layer scenarios cancel, deploy-overlap and restart-degraded, end to end (real
PostgreSQL, real proxy, real child processes): the resilient store passes each with nothing
lost and no anomaly, having done what the scenario is about (calls really cancelled before and
during the outage, two instances really overlapping, a restart really degraded). That each
scenario catches a store broken its way (cancel_drops_batch: lost, stale_cache: stale-read,
journal_per_process: lost) is in the broken-store catalogue (tests/chaos/catalogue.py), run by
tests/chaos/test_broken_targets.py."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from fixtures.chaos_smoke import describe_outcome
from harness.chaos.catalog import scenario, scenario_params
from harness.chaos.scenario import ChaosResources, ScenarioOutcome, run_scenario
from harness.targets import resolve_target

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _params(name: str) -> Any:
    return replace(scenario_params(name, "smoke"), companies=20, warmup_s=1.0, outage_s=2.0,
                   recovery_s=3.0, settle_s=10.0)


async def _run(name: str, spec: str, resources: ChaosResources) -> ScenarioOutcome:
    outcome = await run_scenario(scenario(name), _params(name), resolve_target(spec),
                                 resources)
    assert outcome.verdict != "skipped", outcome.reason
    return outcome


def _clean(outcome: ScenarioOutcome) -> dict[str, Any]:
    item = outcome.section
    assert item["anomalies"] == {} and item["lost_writes"] == 0, describe_outcome(outcome)
    assert item["acked_writes"] > 0 and item["writes_during_fault"] > 0, describe_outcome(outcome)
    assert outcome.verdict == "passed", describe_outcome(outcome)
    return item


async def test_resilient_store_survives_cancelled_calls(chaos_resources: ChaosResources) -> None:
    item = _clean(await _run("cancel", "resilient", chaos_resources))
    cancel = item["workload"]["cancel"]
    assert cancel["cancelled"]["before"] > 0 and cancel["cancelled"]["outage"] > 0, cancel
    assert item["workload"]["errors"].get("CancelledByCaller", 0) == cancel["total"]
    assert item["workload"]["outcomes"].get("write info", 0) > 0  # cancelled writes: info


async def test_resilient_store_survives_a_deploy_overlap(chaos_resources: ChaosResources) -> None:
    item = _clean(await _run("deploy-overlap", "resilient", chaos_resources))
    overlap = item["workload"]["overlap"]
    assert overlap["old_exit"] == 0 and overlap["normal_after_heal_s"] is not None, overlap
    old, new = item["workload"]["old"], item["workload"]["new"]
    assert old["outcomes"].get("write ok", 0) > 0 and new["outcomes"].get("write ok", 0) > 0


async def test_resilient_store_survives_a_restart_while_degraded(
        chaos_resources: ChaosResources) -> None:
    item = _clean(await _run("restart-degraded", "resilient", chaos_resources))
    restart = item["workload"]["restart"]
    assert restart["first_journal_depth_at_close"] > 0, restart  # it left writes behind
    assert restart["mode_at_open"] == "degraded" and restart["opened_before_heal_s"] > 0
    assert restart["loaded_before_heal"], restart  # served from its files during the outage
    assert restart["first_exit"] == 0
