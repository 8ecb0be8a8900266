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
from pathlib import Path

import pytest

from fixtures.chaos_smoke import describe_outcome, run_sever_cli, run_smoke_sever
from harness.chaos.scenario import ChaosResources
from harness.targets import resolve_target

BROKEN = Path(__file__).resolve().parent / "broken_targets"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

@pytest.mark.parametrize(("target", "anomaly"), [
    ("drop_writes", "lost"),
    ("cache_before_db", "unexpected"),
    ("fresh_creds_on_error", "creds-reset"),
    ("absent_on_error", "stale-read"),
])
async def test_broken_target_is_caught_by_name(target: str, anomaly: str,
                                               chaos_resources: ChaosResources) -> None:
    outcome = await run_smoke_sever(resolve_target(f"{BROKEN / target}.py:open_store"),
                                    chaos_resources)
    item = outcome.section
    assert item["writes_during_fault"] > 0, describe_outcome(outcome)
    assert item["anomalies"].get(anomaly, 0) > 0, describe_outcome(outcome)
    assert outcome.verdict == "failed", describe_outcome(outcome)
    assert item["anomaly_examples"][anomaly], "an anomaly comes with examples"
    if anomaly == "lost":
        assert item["lost_writes"] > 0, describe_outcome(outcome)


async def test_reference_store_is_the_control(chaos_resources: ChaosResources) -> None:
    """Fails closed during the outage (unavailable), but nothing acknowledged is lost and no
    read lies: the same scenario that catches the broken targets finds nothing here."""
    outcome = await run_smoke_sever(resolve_target("reference"), chaos_resources)
    item = outcome.section
    assert item["writes_during_fault"] > 0, describe_outcome(outcome)
    assert item["availability"]["writes"] is not None and item["failed_writes"] > 0, \
        "the outage must have been felt, or the control proves nothing"
    assert item["anomalies"] == {} and item["lost_writes"] == 0, describe_outcome(outcome)
    assert outcome.verdict == "passed"


def test_cli_run_exits_1_naming_lost(tmp_path: Path) -> None:
    """The main job end to end: `run --suite chaos --scenario sever --target <file>:open_store`
    fails the run and names the anomaly in its output and its report."""
    out = tmp_path / "run"
    proc = run_sever_cli("tests/chaos/broken_targets/drop_writes.py:open_store", out)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output[-4000:]
    assert "lost" in output, output[-4000:]
    data = json.loads((out / "report.json").read_text())
    rows = [s for s in data["chaos"]["scenarios"] if s["name"] == "sever"]
    assert rows and rows[0]["anomalies"].get("lost", 0) > 0
    assert rows[0]["verdict"] == "failed"
