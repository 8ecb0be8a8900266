"""The disk scenarios' bookkeeping without a mount: the section's `disk` field, the
preconditions, and the skip (with how to enable it) where FUSE cannot be mounted."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest

from harness.chaos import disk_shapes
from harness.chaos.catalog import scenario, scenario_params
from harness.chaos.disk_report import disk_fields, disk_section
from harness.chaos.preconditions import evaluate
from harness.chaos.scenario import ChaosResources, run_scenario
from harness.faults.disk.mount import Unavailable
from harness.metrics.windows import Window
from harness.targets import resolve_target

COUNTERS = {"short_writes": 1, "enospc_errors": 3, "eio_write_errors": 0,
            "eio_fsync_errors": 0, "bytes_dropped_by_failed_fsync": 0, "fsyncs_delayed": 0,
            "fsyncs": 10, "dir_fsyncs": 2, "bytes_written": 1000,
            "failed_paths": ["short write /journal.wal"]}


def power(dropped: int, torn: dict[str, Any] | None = None,
          caught: bool = True) -> dict[str, Any]:
    return {"mode": "clear", "bytes_dropped": dropped, "writes_dropped": 1, "files_affected": 1,
            "files": {"/journal.wal": dropped}, "names_undone": ["+/creds"], "torn": torn,
            "in_flight": {"caught": caught}}


def rep(index: int, dropped: int, lost: int, met: bool) -> Any:
    disk = {"plan": {"fault": "enospc", "power_loss": "clear"}, "power_loss": power(dropped),
            "faults_injected": [{"at_s": 0.5, "command": "enospc"}], "counters": COUNTERS,
            "precondition": {"name": "p", "met": met, "detail": f"rep {index}"},
            "successor_error": None, "deadline": None}
    return SimpleNamespace(index=index, workload={"disk": disk},
                           check=SimpleNamespace(lost_writes=lost))


def test_disk_section_sums_repetitions_and_counts_lost_records() -> None:
    section = disk_section([rep(0, 100, 0, True), rep(1, 50, 3, True)])
    assert section is not None
    assert section["bytes_dropped"] == 150 and section["records_lost"] == 3
    assert section["faults"]["enospc_errors"] == 6
    assert section["precondition"]["met"] is True
    assert [r["repetition"] for r in section["per_repetition"]] == [1, 2]
    assert disk_section([rep(0, 1, 0, True), rep(1, 0, 0, False)])["precondition"]["met"] is False


def test_no_disk_section_for_other_scenarios() -> None:
    assert disk_section([SimpleNamespace(index=0, workload={}, check=None)]) is None
    assert disk_fields([SimpleNamespace(index=0, workload={}, check=None)]) == {}


def test_the_disk_precondition_is_one_of_the_scenarios_preconditions() -> None:
    window = Window("power-loss", 0, 10)
    disk = {"name": "caught mid-write", "met": False, "detail": "dropped 0 unsynced bytes"}
    found = evaluate("power-loss", False, windows=[window],
                     params=[{"killed_at_ns": 5, "disk_precondition": disk}],
                     observations=None, ops=[], durability=None,  # type: ignore[arg-type]
                     deadline_s=2.0, cut_from_ns={}, end_ns=10)
    assert [p.name for p in found] == ["unsynced-at-crash", "caught mid-write"]
    assert not found[1].met and found[1].detail == "dropped 0 unsynced bytes"
    assert list(disk_fields([rep(0, 0, 0, False)])) == ["disk"]


def test_a_power_loss_that_caught_no_write_in_flight_proves_nothing() -> None:
    shape = disk_shapes.make_disk_shape("power-loss", scenario_params("power-loss", "smoke"))
    assert shape is not None
    # only bytes left unsynced long before (a lock file's pid) were dropped
    assert not shape._precondition(power(6, caught=False), COUNTERS)["met"]


@pytest.mark.parametrize(("name", "dropped", "torn", "counters", "met"), [
    ("power-loss", 10, None, {}, True),
    ("power-loss", 0, None, {}, False),  # nothing unsynced: a kill -9, not a power loss
    ("power-loss-torn", 10, {"torn_write_kept_bytes": 5}, {}, True),
    ("power-loss-torn", 10, None, {}, False),
    ("power-loss-reorder", 10, {"reordered": True, "pieces_kept": 2}, {}, True),
    ("power-loss-reorder", 10, {"reordered": False, "pieces_kept": 0}, {}, False),
    ("disk-full", 0, None, {"short_writes": 1, "enospc_errors": 1}, True),
    ("disk-full", 0, None, {"short_writes": 0, "enospc_errors": 4}, False),
    ("disk-error", 0, None, {"eio_write_errors": 1}, True),
    ("disk-error-fsync", 0, None, {"eio_fsync_errors": 0}, False),
    ("slow-disk", 0, None, {"fsyncs_delayed": 3}, True),
])
def test_preconditions(name: str, dropped: int, torn: dict[str, Any] | None,
                       counters: dict[str, int], met: bool) -> None:
    shape = disk_shapes.make_disk_shape(name, scenario_params(name, "smoke"))
    assert shape is not None
    result = shape._precondition(power(dropped, torn), {**COUNTERS, "short_writes": 0,
                                                        "enospc_errors": 0, **counters})
    assert result["met"] is met and result["name"] == disk_shapes.PLANS[name].precondition


async def test_skipped_with_how_to_enable_where_fuse_cannot_be_mounted(
        chaos_resources: ChaosResources, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(disk_shapes, "unavailable", lambda: Unavailable(
        "libfuse3 is not installed", "apt-get install fuse3"))
    params = replace(scenario_params("power-loss", "smoke"), companies=2)
    outcome = await run_scenario(scenario("power-loss"), params, resolve_target("resilient"),
                                 chaos_resources)
    assert outcome.verdict == "skipped"
    assert "libfuse3 is not installed" in outcome.reason
    assert "apt-get install fuse3" in outcome.reason


def test_the_rto_gate_does_not_apply_after_a_power_loss() -> None:
    from harness.chaos.results import figures

    spread = {"p50": 4.0, "p95": 5.0, "max": 6.0, "missing": 0, "count": 100}
    item = {"target": "resilient", "contrast": False, "companies": 100, "repetitions": 1,
            "profile": "smoke", "fault": {"duration_s": 3.0}, "verdict": "passed",
            "deadline_s": 2.0, "rto_s": spread, "mttd_s": spread, "journal": {},
            "lost_writes": 0, "acked_writes": 10, "indeterminate_writes": 0}
    rto, mttd, lost, *_ = figures(scenario("power-loss"), item)
    assert "new process" in rto.context["not_applicable"] and "new process" in rto.notes
    assert mttd.gated and lost.gated  # detection and lost writes stay gated
    assert not mttd.context.get("not_applicable") and not lost.context.get("not_applicable")
