"""The `disk` field of a disk scenario's section: what its power losses dropped, the faults
injected, and whether the precondition held, over every repetition.

`records_lost` is the checker's count of acknowledged writes missing after the power loss
(the filesystem cannot know which of the bytes it dropped were acknowledged; the history can).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.chaos.outcome import Repetition

_SUMMED = ("bytes_dropped", "writes_dropped", "files_affected")
_COUNTERS = ("short_writes", "enospc_errors", "eio_write_errors", "eio_fsync_errors",
             "bytes_dropped_by_failed_fsync", "fsyncs_delayed", "fsyncs", "dir_fsyncs",
             "bytes_written")


def disk_fields(reps: Sequence[Repetition]) -> dict[str, Any]:
    """What a disk scenario adds to its section: `disk`; nothing for other scenarios. (Its
    precondition -- a power loss that caught no write in flight, or a fault that never hit,
    proves nothing -- is also one of the section's `preconditions`: harness/chaos/
    preconditions.py reads it from the fault window.)"""
    disk = disk_section(reps)
    return {} if disk is None else {"disk": disk}


def disk_section(reps: Sequence[Repetition]) -> dict[str, Any] | None:
    """None unless the scenario is a disk one (its repetitions carry workload["disk"])."""
    found = [(r, r.workload.get("disk")) for r in reps]
    found = [(r, d) for r, d in found if isinstance(d, dict)]
    if not found:
        return None
    per_rep = []
    for rep, disk in found:
        power = disk["power_loss"]
        per_rep.append({
            "repetition": rep.index + 1, "mode": power["mode"],
            **{k: power[k] for k in _SUMMED}, "records_lost": rep.check.lost_writes,
            "names_undone": power["names_undone"][:10], "files": power["files"],
            "torn": power.get("torn"), "faults_injected": disk["faults_injected"],
            "faults_hit": disk["counters"].get("failed_paths", [])[:10],
            "successor_error": disk.get("successor_error"), "deadline": disk.get("deadline"),
            "precondition": disk["precondition"]})
    first = found[0][1]
    preconditions = [d["precondition"] for _, d in found]
    deadlines = [d["deadline"] for _, d in found if d.get("deadline")]
    return {
        "plan": first["plan"],
        **{k: sum(p[k] for p in per_rep) for k in _SUMMED},
        "records_lost": sum(p["records_lost"] for p in per_rep),
        "faults": {k: sum(d["counters"].get(k, 0) for _, d in found) for k in _COUNTERS},
        "successor_errors": [p["successor_error"] for p in per_rep if p["successor_error"]],
        "calls_past_deadline": sum(d["calls_past_deadline"] for d in deadlines)
        if deadlines else None,
        "slowest_call_s": max((d["slowest_call_s"] or 0.0 for d in deadlines), default=None)
        if deadlines else None,
        "precondition": {"name": preconditions[0]["name"],
                         "met": all(p["met"] for p in preconditions),
                         "detail": "; ".join(p["detail"] for p in preconditions)},
        "per_repetition": per_rep,
    }
