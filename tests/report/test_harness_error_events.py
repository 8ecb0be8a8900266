"""A test that a failure of the harness ended is reported to the main job as a harness error
event; a test that the target's own error, refusal or crash ended is an ordinary failure."""

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

def test_store_threw():  # node-postgres' 22P05 out of a Node store's keys.set: the store's doing
    from harness.node_target.errors import NodeStoreError
    raise NodeStoreError("error: unsupported Unicode escape sequence", operation="state.keys.set",
                         company_id="c1", outcome="unknown", js_name="error", js_code="22P05",
                         js_where="")

def test_store_crashed():  # the module killed its own process: a verdict (crash), not exit 2
    from harness.node_target.errors import NodeStoreCrashed
    raise NodeStoreCrashed("node:s.mjs: crash: the Node sidecar exited unexpectedly", returncode=1)

def test_our_store_refused():
    from harness.authstate.errors import StoreRejected
    raise StoreRejected("permission denied for table whatsapp_keys", hint="grant it")

def test_harness_failed_among_other_failures():  # Hypothesis reports distinct failures as a group
    raise ExceptionGroup("2 distinct failures", [
        AssertionError("stale"), ProvisioningError("the fault proxy went away")])
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
    assert [e["nodeid"].rsplit("::", 1)[1] for e in errors] == [
        "test_harness_could_not_work", "test_harness_failed_among_other_failures"], lines
    assert errors[0]["type"] == "ProvisioningError"
    assert "the sidecar died (look at its output)" == errors[0]["message"]
    assert errors[1]["message"] == "the fault proxy went away"
    failed = {e["nodeid"].rsplit("::", 1)[1] for e in lines
              if e["event"] == "result" and e["outcome"] == "failed"}
    assert {"test_store_threw", "test_store_crashed", "test_our_store_refused"} <= failed

    outcomes = RunOutcomes(select_suites(["property"]))
    outcomes.feed(lines)
    assert [e["type"] for e in outcomes.harness_errors] == ["ProvisioningError"] * 2
