"""client-crash: a child process running the target is killed with SIGKILL while its journal
holds writes; a new instance on the same cache_dir replays them and nothing acknowledged is
lost. Also the child's own guarantees (history survives the kill, never outlives its parent),
and real Signal conversations living in the killed process and going on in its successor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import pytest

from harness.chaos import scenario as scenario_runner
from harness.chaos.catalog import ScenarioParams, scenario, scenario_params
from harness.chaos.child import DSN_ENV
from harness.chaos.crash_signal import NEW_POD_PROCESS_BASE, SUCCESSOR_PROCESS_BASE
from harness.chaos.scenario import ChaosResources, ScenarioOutcome, run_scenario
from harness.chaos.signal_beside import PROCESS_BASE, chaos_signal_params
from harness.metrics.history import History
from harness.targets import resolve_target

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PARAMS = replace(scenario_params("client-crash", "smoke"), companies=20, warmup_s=1.0,
                 outage_s=2.0, recovery_s=3.0, settle_s=10.0)
# The quick profile's conversations, busier: messages are in flight at the kill
SIGNAL = chaos_signal_params("quick", message_rate_hz=4.0, reply_probability=0.9)


async def run_crash(spec: str, resources: ChaosResources, params: ScenarioParams = PARAMS,
                    **kwargs: Any) -> ScenarioOutcome:
    outcome = await run_scenario(scenario("client-crash"), params, resolve_target(spec),
                                 resources, **kwargs)
    assert outcome.verdict != "skipped", outcome.reason
    return outcome


async def test_resilient_store_replays_a_killed_process_s_journal_and_its_conversations_go_on(
        chaos_resources: ChaosResources, baileys_root: Path) -> None:
    """The journal left by the kill is replayed and nothing acknowledged is lost; the real
    Signal conversations the killed process held (the quick profile's, busier, so messages
    are in flight at the kill) die with it, its Node.js engine too, and they go on in its
    successor: what the server stand-in still held is received, every conversation continues
    there and in the new pod, nothing undecryptable, no session re-established."""
    outcome = await run_crash("resilient", chaos_resources, signal=SIGNAL)
    item = outcome.section
    assert item["precondition"] == {"name": "unsynced-at-crash", "met": True,
                                    "detail": item["precondition"]["detail"]}
    crash = item["workload"]["crash"]
    assert crash["journal_depth_at_kill"] > 0, crash
    assert crash["journal_drained_after_heal_s"] is not None, crash
    assert item["anomalies"] == {} and item["lost_writes"] == 0, item["anomalies"]
    assert item["acked_writes"] > 0 and item["writes_during_fault"] > 0
    [window] = item["fault_windows"]
    assert window["kind"] == "client-crash"
    assert outcome.verdict == "passed"

    signal = item["signal"]
    assert signal is not None and signal["messages"] > 0, item.get("notes")
    [rep] = signal["repetitions"]
    assert signal["undecryptable_with_new_pod"] == 0, (signal["undecryptable"], rep["successor"])
    assert signal["reestablished"] == 0 and signal["lost"] == 0, signal
    successor = rep["successor"]
    assert signal["successor_ok"] and successor["continued"] == successor["conversations"] > 0, \
        successor
    assert signal["new_pod_ok"], rep["new_pod"]
    assert signal["verdict"] == "passed", rep
    at_kill = crash["signal"]
    assert at_kill["in_flight_at_kill"]["with_the_server"] > 0, at_kill  # busy enough
    assert at_kill["received_after_kill"].get("decrypted", 0) > 0, at_kill
    assert not at_kill["received_after_kill"].get("failed"), at_kill
    # the child's Node.js engine ended by itself with the child (end of its stdin)
    assert at_kill["node_pids"] and at_kill["node_survived_kill"] == [], at_kill
    assert at_kill["node_exit_s"] is not None, at_kill
    assert not any(_node_runs(pid) for pid in at_kill["node_pids"])
    # the conversations' store calls: the child's until the kill (before the heal), then the
    # successor's and the new pod's (process ids: harness.chaos.signal_beside, crash_signal)
    [healed] = outcome.repetitions[0].windows
    assert healed.cleared_ns is not None
    ops = [op for op in outcome.repetitions[0].history.ops() if op.company.startswith("sig")]
    child = [op for op in ops if PROCESS_BASE <= op.process < SUCCESSOR_PROCESS_BASE]
    after = [op for op in ops if SUCCESSOR_PROCESS_BASE <= op.process < NEW_POD_PROCESS_BASE]
    pod = [op for op in ops if op.process >= NEW_POD_PROCESS_BASE]
    assert child and after and pod and len(child) + len(after) + len(pod) == len(ops)
    assert max(op.invoke_ns for op in child) < healed.cleared_ns
    assert min(op.invoke_ns for op in after) > healed.cleared_ns


def _node_runs(pid: int) -> bool:
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and process.name() == "node"
    except psutil.NoSuchProcess:
        return False


async def test_a_replay_without_sessions_breaks_the_conversations_with_bad_mac_named_by_key(
        chaos_resources: ChaosResources, baileys_root: Path) -> None:
    """The successor replays the dead process's journal without its session rows: the checker
    names the lost writes, and the conversations the killed process held fail with Bad MAC
    when the successor receives what the server kept for them, attributed to session keys.
    (Few Baileys companies and a short settle: the finding is in the Signal companies, and the
    settle only waits for writes that will never come.)"""
    spec = f"{REPO / 'tests/chaos/broken_targets/replay_skips_sessions.py'}:open_store"
    outcome = await run_crash(spec, chaos_resources, replace(
        PARAMS, companies=5, recovery_s=2.0, settle_s=3.0), signal=SIGNAL)
    item = outcome.section
    assert item["anomalies"].get("lost", 0) > 0 and outcome.verdict == "failed", item["reason"]
    signal = item["signal"]
    assert signal["undecryptable"].get("Bad MAC", 0) > 0, (signal["undecryptable"],
                                                          signal["repetitions"][0]["successor"])
    assert signal["verdict"] == "failed"
    named = [k for k in signal["attribution"]["keys"]
             if k["key"][0] == "session" and "Bad MAC" in k["errors"]]
    assert named, signal["attribution"]


async def test_reference_store_loses_nothing_but_proves_nothing_either(
        chaos_resources: ChaosResources, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write-through store: nothing acknowledged is lost, but the kill found nothing it had
    acknowledged and not yet written, so it tested nothing a journal claims: inconclusive
    (the precondition says so), never passed."""
    monkeypatch.setattr(scenario_runner, "PRECONDITION_RETRIES", 0)  # it would not change
    outcome = await run_crash("reference", chaos_resources)
    item = outcome.section
    crash = item["workload"]["crash"]
    assert crash["journal_depth_at_kill"] is None  # no status(): killed at the end of the hold
    assert crash["child_ops"] > 0
    assert item["anomalies"] == {} and item["lost_writes"] == 0, item["anomalies"]
    assert outcome.verdict == "inconclusive", item["reason"]
    assert item["precondition"]["name"] == "unsynced-at-crash"
    assert not item["precondition"]["met"]


async def test_drop_writes_target_is_caught_across_the_crash(
        chaos_resources: ChaosResources) -> None:
    spec = f"{REPO / 'tests/chaos/broken_targets/drop_writes.py'}:open_store"
    outcome = await run_crash(spec, chaos_resources)
    assert outcome.section["anomalies"].get("lost", 0) > 0
    assert outcome.verdict == "failed"


def test_child_leaves_its_history_when_killed_and_exits_with_its_parent(
        tmp_path: Path, pg_dsn: str) -> None:
    history = tmp_path / "h.jsonl"
    argv = [sys.executable, "-m", "harness.chaos.child", "--target", "reference",
            "--cache-dir", str(tmp_path), "--history", str(history),
            "--layout", str(tmp_path / "layout.json"), "--companies", "a,b"]
    proc = subprocess.Popen(argv, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, DSN_ENV: pg_dsn})
    try:
        assert proc.stdout is not None
        events = []
        while not any(e.get("event") == "status" for e in events):
            line = proc.stdout.readline()
            assert line, "the child exited before running"
            events.append(json.loads(line))
        assert [e["event"] for e in events][:2] == ["ready", "running"]
        layout = json.loads((tmp_path / "layout.json").read_text())
        assert [c["id"] for c in layout["companies"]] == ["a", "b"]
        assert proc.stdin is not None
        proc.stdin.close()  # the parent goes away: the child follows
        assert proc.wait(timeout=30) == 3
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    recorded = History.read_jsonl(history)
    assert len(recorded.ops()) > 0
    assert {op.company for op in recorded.ops()} == {"a", "b"}


def test_child_killed_mid_run_leaves_a_readable_history(tmp_path: Path, pg_dsn: str) -> None:
    history = tmp_path / "h.jsonl"
    argv = [sys.executable, "-m", "harness.chaos.child", "--target", "reference",
            "--cache-dir", str(tmp_path), "--history", str(history),
            "--layout", str(tmp_path / "layout.json"), "--companies", "a"]
    proc = subprocess.Popen(argv, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, DSN_ENV: pg_dsn})
    try:
        assert proc.stdout is not None
        while json.loads(proc.stdout.readline() or '{"event": "eof"}')["event"] != "running":
            pass
        time.sleep(0.5)
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    recorded = History.read_jsonl(history)  # a torn last line is dropped, not an error
    assert len(recorded.ops()) > 5
