"""The example Node.js stores under the chaos suite's `sever`, through the real fault proxy:
the flawed one (the origin system's cache mode: skips saves during the outage) is failed by
name (`lost`), the correct one is unavailable during the fault and loses nothing. Also once
through the CLI, as a team would run it: `run --target node:...flawed.js` exits 1 naming lost.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from node_bridge_support import require_node

from fixtures.chaos_smoke import describe_outcome, run_sever_cli, run_smoke_sever
from harness.chaos.scenario import ChaosResources, ScenarioOutcome
from harness.node_target.errors import NodeUnavailable
from harness.targets import TargetSpec, resolve_target

CORRECT = "node:examples/node-store/index.js"
FLAWED = "node:examples/node-store/flawed.js"
CRASHING = "node:tests/node_target/modules/crashing_store/index.mjs"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

def node_spec(spec: str) -> TargetSpec:
    require_node()
    try:
        return resolve_target(spec)  # installs the example's npm dependencies on first use
    except NodeUnavailable as exc:
        pytest.skip(f"{exc.message}. To enable: {exc.hint}")


async def run_sever(spec: str, resources: ChaosResources) -> ScenarioOutcome:
    return await run_smoke_sever(node_spec(spec), resources)


async def test_flawed_node_store_is_caught_naming_lost(chaos_resources: ChaosResources) -> None:
    outcome = await run_sever(FLAWED, chaos_resources)
    item = outcome.section
    assert item["writes_during_fault"] > 0, describe_outcome(outcome)
    assert item["anomalies"].get("lost", 0) > 0, describe_outcome(outcome)
    assert item["lost_writes"] > 0, describe_outcome(outcome)
    assert item["anomaly_examples"]["lost"], "an anomaly comes with examples"
    assert outcome.verdict == "failed", describe_outcome(outcome)


async def test_correct_node_store_is_unavailable_but_loses_nothing(
        chaos_resources: ChaosResources) -> None:
    outcome = await run_sever(CORRECT, chaos_resources)
    item = outcome.section
    assert item["writes_during_fault"] > 0, describe_outcome(outcome)
    # unavailable: nearly every write in the window fails (one racing the sever may land)
    assert item["availability"]["writes"] < 0.1, describe_outcome(outcome)
    assert item["indeterminate_writes"] + item["failed_writes"] > 0, describe_outcome(outcome)
    assert item["anomalies"] == {} and item["lost_writes"] == 0, describe_outcome(outcome)
    assert item["rto_s"]["missing"] == 0, "every company recovered after the fault"
    assert outcome.verdict == "passed", describe_outcome(outcome)


def _run_sever_cli(spec: str, out: Path) -> subprocess.CompletedProcess[str]:
    node_spec(spec)  # skips without node, installs the example's npm dependencies first
    return run_sever_cli(spec, out)


def test_cli_run_on_the_flawed_node_store_exits_1_naming_lost(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _run_sever_cli(FLAWED, out)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output[-4000:]
    assert "lost" in output, output[-4000:]
    data = json.loads((out / "report.json").read_text())
    rows = [s for s in data["chaos"]["scenarios"] if s["name"] == "sever"]
    assert rows and rows[0]["anomalies"].get("lost", 0) > 0
    assert rows[0]["target"] == "node:node-store/flawed.js"


async def test_a_store_that_crashes_its_process_is_a_crash_verdict_with_its_output(
        chaos_resources: ChaosResources) -> None:
    """No 'error' listener on the pool: the sever kills the sidecar. That is the most important
    thing a user can learn about the store: the scenario fails with anomaly `crash`, the exit
    code and the module's last output; what had landed is still judged."""
    outcome = await run_sever(CRASHING, chaos_resources)
    item = outcome.section
    assert outcome.verdict == "failed", describe_outcome(outcome)
    assert item["anomalies"].get("crash") == 1, describe_outcome(outcome)
    (example,) = item["anomaly_examples"]["crash"]
    assert "exited unexpectedly" in example["note"], example["note"][-2000:]
    assert example["detail"]["exit_code"] == 1
    # its first error line leads the message (Node's dump of the client can push it out of
    # the output's last lines, which are kept too)
    assert "Connection terminated" in example["note"], example["note"][-2000:]
    assert example["detail"]["output_tail"], example["detail"]


def test_cli_run_whose_node_store_crashes_is_a_verdict_exit_1(tmp_path: Path) -> None:
    """A crashed sidecar is a finding about the store, not a failure of the harness: `run` exits
    1 naming the anomaly `crash`, and the report carries the module's output, scrubbed of its
    secrets."""
    out = tmp_path / "run"
    proc = _run_sever_cli(CRASHING, out)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output[-4000:]
    assert "crash" in output, output[-4000:]
    report = json.loads((out / "report.json").read_text())
    assert report["run"]["status"] != "error", report["run"]
    (row,) = [s for s in report["chaos"]["scenarios"] if s["name"] == "sever"]
    assert row["verdict"] == "failed" and row["anomalies"].get("crash", 0) >= 1  # per repetition
    assert "Connection terminated" in json.dumps(row["anomaly_examples"]["crash"])
    assert not re.search(r"secretKey: \d", (out / "report.md").read_text())
    assert not re.search(r"secretKey: \d", (out / "report.json").read_text())
