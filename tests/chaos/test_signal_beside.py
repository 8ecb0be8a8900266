"""Real Signal conversations beside a chaos scenario: the verdict in the users' own words.

A short `sever` with 12 companies in real Baileys conversations (their keys served by the
target) beside the Baileys-shaped traffic. The resilient store keeps every conversation going
(0 undecryptable, 0 re-established, the new pod carries on); a store that forgets one session's
writes made during the outage fails the scenario with Bad MAC, attributed to that key. What the
main job's quick / ci profiles do for every steady scenario (plain pytest's smoke leaves it out).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from fixtures.chaos_smoke import describe_outcome, smoke_params
from harness.chaos.catalog import scenario
from harness.chaos.scenario import ChaosResources, run_scenario
from harness.chaos.signal_beside import chaos_signal_params
from harness.targets import resolve_target

BROKEN = Path(__file__).resolve().parents[1] / "signal" / "broken_targets"
CHAOS_BROKEN = Path(__file__).resolve().parent / "broken_targets"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


def _node_children() -> list[int]:
    """Node.js processes this process started (the engines' sidecars), from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            comm = (stat.parent / "comm").read_text().strip()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and comm.startswith("node"):
            found.append(int(stat.parent.name))
    return found


async def _sever(spec: str, resources: ChaosResources, **workload: float) -> dict:  # type: ignore[type-arg]
    params = replace(smoke_params("sever"), companies=20)
    outcome = await run_scenario(scenario("sever"), params, resolve_target(spec), resources,
                                 signal=chaos_signal_params("quick", **workload))
    assert outcome.verdict != "skipped", outcome.reason
    return outcome.section


async def test_the_resilient_store_keeps_every_conversation_going(
        chaos_resources: ChaosResources, baileys_root: Path) -> None:
    item = await _sever("resilient", chaos_resources)
    signal = item["signal"]
    assert signal is not None and signal["messages"] > 0, item.get("notes")
    assert signal["undecryptable_with_new_pod"] == 0, signal["undecryptable"]
    assert signal["reestablished"] == 0 and signal["lost"] == 0, signal
    assert signal["new_pod_ok"], signal["repetitions"][0]["new_pod"]
    assert signal["verdict"] == "passed" and item["verdict"] == "passed", item["reason"]


async def test_a_forgotten_session_fails_the_scenario_with_bad_mac_named_by_its_key(
        chaos_resources: ChaosResources, baileys_root: Path) -> None:
    """Busy conversations (answers almost always), so that some session turns its ratchet
    while PostgreSQL is away: the one the target then forgets."""
    item = await _sever(f"{BROKEN / 'forgets_session.py'}:open_store", chaos_resources,
                        message_rate_hz=2.0, reply_probability=0.9)
    signal = item["signal"]
    assert signal["verdict"] == "failed" and item["verdict"] == "failed", item["reason"]
    failed = dict(signal["repetitions"][0]["failed_attempts"])
    failed.update(signal["repetitions"][0]["new_pod"]["failed_by"])
    assert failed.get("Bad MAC", 0) > 0, (failed, describe_outcome)
    named = [k for k in signal["attribution"]["keys"] if k["key"][0] == "session"
             and "Bad MAC" in k["errors"]]
    assert named, signal["attribution"]["keys"][:5]


async def test_a_target_failing_its_setup_leaves_no_signal_engine_behind(
        chaos_resources: ChaosResources, baileys_root: Path) -> None:
    """The Signal engine starts while the other companies pair (Node.js loads Baileys on a core
    of its own); when the target then fails its set-up, the verdict is the target's and the
    engine started early is stopped with the rest."""
    before = set(_node_children())
    item = await _sever(f"{CHAOS_BROKEN / 'value_column_too_small.py'}:open_store",
                        chaos_resources)
    assert item["verdict"] == "failed" and "setup-failed" in item["anomalies"], item["reason"]
    assert set(_node_children()) <= before
