"""The chaos checker catches deliberately broken stores, by the right anomaly name.

Each target in tests/chaos/broken_targets/ wraps the reference store and breaks it in one way
(see the top of each file). A real, short `sever` scenario runs against it through the scenario
runner (real proxy, real PostgreSQL, the Baileys-shaped workload, final read straight from
PostgreSQL): the named anomaly must be reported and the verdict must fail. The reference store
itself (fails closed, loses nothing) is the control: no anomaly at all. Once through the CLI
too: `harness run --suite chaos --scenario sever --target ...drop_writes.py:open_store` exits 1
naming `lost`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from harness.chaos.catalog import scenario, scenario_params
from harness.chaos.scenario import ChaosResources, ScenarioOutcome, run_scenario
from harness.targets import resolve_target

REPO = Path(__file__).resolve().parents[2]
BROKEN = Path(__file__).resolve().parent / "broken_targets"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

# Short, but long enough to be certain: 30 companies at 4 messages/s each make ~360 messages
# during a 3 s outage, so even the rarest message kind (a reconnect's load(), 2 %) comes ~7 times.
PARAMS = replace(scenario_params("sever", "smoke"), companies=30, warmup_s=1.0, outage_s=3.0,
                 recovery_s=2.0, settle_s=5.0)


async def run_sever(spec: str, resources: ChaosResources) -> ScenarioOutcome:
    outcome = await run_scenario(scenario("sever"), PARAMS, resolve_target(spec), resources)
    assert outcome.verdict != "skipped", outcome.reason
    return outcome


def describe(outcome: ScenarioOutcome) -> str:
    item = outcome.section
    return (f"verdict {item['verdict']}, anomalies {item['anomalies']}, acked "
            f"{item['acked_writes']}, lost {item['lost_writes']}, writes during fault "
            f"{item['writes_during_fault']}")


@pytest.mark.parametrize(("target", "anomaly"), [
    ("drop_writes", "lost"),
    ("cache_before_db", "unexpected"),
    ("fresh_creds_on_error", "creds-reset"),
    ("absent_on_error", "stale-read"),
])
async def test_broken_target_is_caught_by_name(target: str, anomaly: str,
                                               chaos_resources: ChaosResources) -> None:
    outcome = await run_sever(f"{BROKEN / target}.py:open_store", chaos_resources)
    item = outcome.section
    assert item["writes_during_fault"] > 0, describe(outcome)
    assert item["anomalies"].get(anomaly, 0) > 0, describe(outcome)
    assert outcome.verdict == "failed", describe(outcome)
    assert item["anomaly_examples"][anomaly], "an anomaly comes with examples"
    if anomaly == "lost":
        assert item["lost_writes"] > 0, describe(outcome)


async def test_reference_store_is_the_control(chaos_resources: ChaosResources) -> None:
    """Fails closed during the outage (unavailable), but nothing acknowledged is lost and no
    read lies: the same scenario that catches the broken targets finds nothing here."""
    outcome = await run_sever("reference", chaos_resources)
    item = outcome.section
    assert item["writes_during_fault"] > 0, describe(outcome)
    assert item["availability"]["writes"] is not None and item["failed_writes"] > 0, \
        "the outage must have been felt, or the control proves nothing"
    assert item["anomalies"] == {} and item["lost_writes"] == 0, describe(outcome)
    assert outcome.verdict == "passed"


def test_cli_run_exits_1_naming_lost(tmp_path: Path) -> None:
    """The main job end to end: `run --suite chaos --scenario sever --target <file>:open_store`
    fails the run and names the anomaly in its output and its report."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("AUTHSTATE_PG_KIND", None)
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--suite", "chaos", "--scenario", "sever",
         "--target", "tests/chaos/broken_targets/drop_writes.py:open_store",
         "--out", str(out), "--plain"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=280, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output[-4000:]
    assert "lost" in output, output[-4000:]
    data = json.loads((out / "report.json").read_text())
    rows = [s for s in data["chaos"]["scenarios"] if s["name"] == "sever"]
    assert rows and rows[0]["anomalies"].get("lost", 0) > 0
    assert rows[0]["verdict"] == "failed"
