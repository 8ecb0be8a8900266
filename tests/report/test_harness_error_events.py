"""A test that a HarnessError ended is reported to the main job as a harness error event."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness.runner.outcomes import RunOutcomes
from harness.runner.suites import select_suites

TESTS = '''
from harness.errors import ProvisioningError

def test_harness_could_not_work():
    raise ProvisioningError("the sidecar died", hint="look at its output")

def test_store_was_wrong():  # a finding about the store: an ordinary failure, no event
    raise AssertionError("the store served stale creds")
'''


def test_only_harness_errors_become_harness_error_events(tmp_path: Path) -> None:
    (tmp_path / "test_events_probe.py").write_text(TESTS)
    events = tmp_path / "events.jsonl"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    "-p", "harness.report.pytest_events", f"--harness-events={events}",
                    str(tmp_path / "test_events_probe.py")],
                   cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    errors = [e for e in lines if e["event"] == "harness_error"]
    assert len(errors) == 1, lines
    assert errors[0]["nodeid"].endswith("test_harness_could_not_work")
    assert errors[0]["type"] == "ProvisioningError"
    assert "the sidecar died (look at its output)" == errors[0]["message"]

    outcomes = RunOutcomes(select_suites(["property"]))
    outcomes.feed(lines)
    assert [e["type"] for e in outcomes.harness_errors] == ["ProvisioningError"]
