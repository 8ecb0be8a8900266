"""Disk faults end to end (harness/chaos/disk_shapes.py): the target's cache_dir on the
fault-injecting FUSE filesystem, a child process killed while PostgreSQL is away, every unsynced
byte forgotten, a new process on the same cache_dir. Each claim has its broken store:
- power-loss passes the resilient store and fails (naming `lost`) the same store with its
  journal's fdatasync removed -- which the SIGKILL-only client-crash scenario cannot tell apart;
- disk-full fails a store that acknowledges journal writes the disk refused, and passes the
  resilient store once its journal stops acknowledging after a failed write (issue 17 §3).
The other disk scenarios (torn, reorder, disk-error, disk-error-fsync, slow-disk) run in the
chaos suite's thorough profile."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from harness.chaos.catalog import ScenarioParams, scenario, scenario_params
from harness.chaos.scenario import ChaosResources, ScenarioOutcome, run_scenario
from harness.faults.disk import unavailable
from harness.targets import resolve_target

BROKEN = Path(__file__).resolve().parent / "broken_targets"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def params(name: str) -> ScenarioParams:
    return replace(scenario_params(name, "smoke"), companies=20, warmup_s=1.0, outage_s=2.0,
                   recovery_s=2.0, settle_s=10.0)


async def run_disk(name: str, spec: str, resources: ChaosResources) -> ScenarioOutcome:
    if (missing := unavailable()) is not None:
        pytest.skip(f"{name} needs FUSE: {missing.reason} ({missing.hint})")
    outcome = await run_scenario(scenario(name), params(name), resolve_target(spec), resources)
    assert outcome.verdict != "skipped", outcome.reason
    return outcome


def describe(outcome: ScenarioOutcome) -> str:
    item = outcome.section
    disk = item.get("disk") or {}
    return (f"verdict {item['verdict']}, anomalies {item['anomalies']}, acked "
            f"{item['acked_writes']}, lost {item['lost_writes']}, disk: bytes dropped "
            f"{disk.get('bytes_dropped')}, precondition {disk.get('precondition')}, faults "
            f"{disk.get('faults')}, successor errors {disk.get('successor_errors')}, notes "
            f"{item.get('notes')}")


async def test_power_loss_passes_the_resilient_store(chaos_resources: ChaosResources) -> None:
    outcome = await run_disk("power-loss", "resilient", chaos_resources)
    item = outcome.section
    assert item["disk"]["precondition"]["met"], describe(outcome)
    assert item["workload"]["crash"]["journal_depth_at_kill"] > 0, describe(outcome)
    assert item["anomalies"] == {} and item["lost_writes"] == 0, describe(outcome)
    assert item["acked_writes"] > 0 and item["writes_during_fault"] > 0
    assert outcome.verdict == "passed", describe(outcome)


async def test_power_loss_catches_a_journal_without_fdatasync(
        chaos_resources: ChaosResources) -> None:
    outcome = await run_disk("power-loss", f"{BROKEN / 'journal_no_fsync.py'}:open_store",
                             chaos_resources)
    item = outcome.section
    assert item["disk"]["bytes_dropped"] > 0, describe(outcome)
    assert item["anomalies"].get("lost", 0) > 0 and item["lost_writes"] > 0, describe(outcome)
    assert item["disk"]["records_lost"] == item["lost_writes"]
    assert outcome.verdict == "failed"


async def test_disk_full_passes_the_resilient_store(chaos_resources: ChaosResources) -> None:
    outcome = await run_disk("disk-full", "resilient", chaos_resources)
    item = outcome.section
    assert item["disk"]["precondition"]["met"], describe(outcome)
    assert item["failed_writes"] + item["indeterminate_writes"] > 0, describe(outcome)
    assert item["anomalies"] == {} and item["lost_writes"] == 0, describe(outcome)
    assert not item["disk"]["successor_errors"], describe(outcome)
    assert outcome.verdict == "passed", describe(outcome)


async def test_disk_full_catches_a_store_that_acknowledges_despite_enospc(
        chaos_resources: ChaosResources) -> None:
    outcome = await run_disk("disk-full", f"{BROKEN / 'journal_ignores_enospc.py'}:open_store",
                             chaos_resources)
    item = outcome.section
    assert item["disk"]["precondition"]["met"], describe(outcome)
    assert item["anomalies"].get("lost", 0) > 0, describe(outcome)
    assert outcome.verdict == "failed"
