"""The checker's acceptance suite: every broken store of the catalogue is named, by a real run.

Each entry of tests/chaos/catalogue.py is one realistic mistake (a file in broken_targets/,
wrapping the reference store). A real, short scenario runs against it through the scenario
runner (real proxy, real PostgreSQL, the Baileys-shaped workload, the observer reading
PostgreSQL on its own connection): the named anomaly must be reported and the verdict must fail
(or, for the store that lies about its recovery, the observed RTO must miss the gate its own
word would pass). The reference and resilient stores are the controls: nothing at all. A
scenario whose fault never happened, or whose crash killed nothing worth killing, is
inconclusive, never passed (the crash that killed nothing unsynced: test_client_crash.py).
Once through the CLI too: exit 1 naming `lost`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from catalogue import CATALOGUE, ROOT, Entry

from fixtures.chaos_smoke import describe_outcome, run_sever_cli, run_smoke
from harness.chaos.scenario import ChaosResources
from harness.config import KNOWN_GATES
from harness.faults.helpers import Fault
from harness.targets import resolve_target

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PYTHON_ENTRIES = [e for e in CATALOGUE if not e.spec and not e.tested_by]


@pytest.mark.parametrize("entry", PYTHON_ENTRIES, ids=[e.name for e in PYTHON_ENTRIES])
async def test_broken_target_is_caught_by_name(entry: Entry,
                                               chaos_resources: ChaosResources) -> None:
    outcome = await run_smoke(entry.scenario, resolve_target(entry.target), chaos_resources)
    item = outcome.section
    if entry.is_gate:  # the store is consistent; its recovery is not what it says
        gate = entry.caught_by.removeprefix("gate ")
        rto, reported = item["rto_s"], item["reported"]["rto_s"]
        assert rto["p95"] is not None and rto["p95"] > KNOWN_GATES[gate].default, \
            describe_outcome(outcome)
        assert reported["p95"] is not None and reported["p95"] < rto["p95"] / 2, \
            describe_outcome(outcome)
        return
    assert item["anomalies"].get(entry.caught_by, 0) > 0, describe_outcome(outcome)
    assert outcome.verdict == "failed", describe_outcome(outcome)
    assert item["anomaly_examples"][entry.caught_by], "an anomaly comes with examples"
    if entry.caught_by == "lost":
        assert item["lost_writes"] > 0, describe_outcome(outcome)
    if entry.caught_by != "setup-failed":
        assert item["writes_during_fault"] > 0, describe_outcome(outcome)
    if entry.name == "undecoded_buffer_cache":
        notes = [e["note"] for e in item["anomaly_examples"]["unexpected"]]
        assert any("Buffer-object" in n for n in notes), notes


@pytest.mark.parametrize("control", ["reference", "resilient"])
async def test_our_stores_are_the_controls(control: str,
                                           chaos_resources: ChaosResources) -> None:
    """The same scenario that catches the broken targets finds nothing here: the reference
    store fails closed (unavailable, nothing acknowledged lost, no read lies), the resilient
    one keeps working and recovers."""
    outcome = await run_smoke("sever", resolve_target(control), chaos_resources)
    item = outcome.section
    assert item["writes_during_fault"] > 0, describe_outcome(outcome)
    if control == "reference":
        assert item["failed_writes"] > 0, "the outage must have been felt, or it proves nothing"
    assert item["anomalies"] == {} and item["lost_writes"] == 0, describe_outcome(outcome)
    assert outcome.verdict == "passed", describe_outcome(outcome)
    assert item["precondition"]["met"], item["precondition"]


async def test_a_fault_that_never_reached_the_database_is_inconclusive(
        chaos_resources: ChaosResources, monkeypatch: pytest.MonkeyPatch) -> None:
    """A nemesis that silently fails to inject (here: the sever does nothing) must not pass:
    the observer's probe never saw the path down, so the scenario proved nothing."""

    async def no_op(self: Fault) -> None:
        return None

    monkeypatch.setattr(Fault, "ainject", no_op)
    outcome = await run_smoke("sever", resolve_target("resilient"), chaos_resources)
    assert outcome.verdict == "inconclusive", describe_outcome(outcome)
    assert "path-down" in outcome.section["reason"], outcome.section["reason"]
    assert outcome.repetitions[0].attempt == 3, "an unmet precondition is retried first"


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


def test_every_catalogue_entry_is_run_by_a_test() -> None:
    """An entry run elsewhere names the test that runs it, and that test names its target."""
    for entry in CATALOGUE:
        if entry in PYTHON_ENTRIES:
            continue
        assert entry.tested_by, f"{entry.name}: neither run here nor by a named test"
        text = (ROOT / entry.tested_by).read_text()
        path = entry.target.removeprefix("node:").removesuffix(":open_store")
        assert path in text or f"{Path(path).stem}.py" in text, (entry.name, entry.tested_by)
