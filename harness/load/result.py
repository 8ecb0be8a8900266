"""The result of one Locust run (load-result.json) and the per-operation summary of it.

Written by the Locust master (or single process) at quit; read by the harness, which adds the
checker, the bridge ratio and the scale curve and turns it into report.json's `load` section.
Pure: no locust import (the harness and pytest read it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.load.hdr import ALL, LatencyRecorder, curve, percentiles_ms

RESULT_SCHEMA = "authstate-harness/load-result"
RESULT_VERSION = 1
LOCUST_PERCENTILES = (("50", 0.5), ("95", 0.95), ("99", 0.99))


def atomic_json(path: Path, doc: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, separators=(",", ":")))
    os.replace(tmp, path)


def result_document(*, recorder: LatencyRecorder, locust: Mapping[str, Any],
                    profile: str | None, users: int, processes: int, rate: float | None,
                    started_wall: float | None, ended_wall: float,
                    procs: Sequence[Mapping[str, Any]], target: str | None) -> dict[str, Any]:
    return {"schema": RESULT_SCHEMA, "version": RESULT_VERSION, "profile": profile,
            "users": users, "processes": processes, "rate": rate, "target": target,
            "started_wall": started_wall, "ended_wall": ended_wall,
            "recorder": recorder.to_wire(), "locust": dict(locust), "procs": list(procs)}


def read_result(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text())
    if doc.get("schema") != RESULT_SCHEMA:
        raise ValueError(f"{path} is not a load result ({doc.get('schema')!r})")
    return doc


def duration_s(doc: Mapping[str, Any]) -> float:
    start, end = doc.get("started_wall"), doc.get("ended_wall")
    return max(1e-9, float(end) - float(start)) if start and end else 0.0


def op_summary(recorder: LatencyRecorder, op: str, seconds: float,
               locust: Mapping[str, Any] | None = None, *,
               phases: Iterable[str] | None = None) -> dict[str, Any]:
    """One operation as report.json's `load.ops[name]`."""
    phases = None if phases is None else list(phases)
    ok, fail = recorder.count(op, phases)
    raw = recorder.merged("raw", op, phases)
    corrected = recorder.merged("corrected", op, phases)
    theirs = (locust or {}).get(op) or {}
    return {"count": ok + fail, "failures": fail,
            "rate": round((ok + fail) / seconds, 2) if seconds else None,
            **percentiles_ms(raw),
            "locust": {f"p{label}_ms": theirs.get(f"p{label}_ms")
                       for label, _ in LOCUST_PERCENTILES},
            "corrected": (percentiles_ms(corrected) if corrected.get_total_count() else None),
            "hdr_curve": curve(raw)}


def ops_summary(recorder: LatencyRecorder, seconds: float,
                locust: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    return {op: op_summary(recorder, op, seconds, locust) for op in [*recorder.ops(), ALL]
            if recorder.count(op) != (0, 0)}


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if value < 100 else f"{value:.0f}"
    return str(value)


def format_table(doc: Mapping[str, Any]) -> str:
    """A plain-text latency table: HDR (µs-exact) percentiles beside Locust's own."""
    recorder = LatencyRecorder.from_wire(doc["recorder"])
    seconds = duration_s(doc)
    ops = ops_summary(recorder, seconds, doc.get("locust"))
    header = ["operation", "count", "fail", "p50", "p95", "p99", "p99.9", "max",
              "locust p50", "p95", "p99"]
    rows = [header]
    for name, s in ops.items():
        rows.append([name, str(s["count"]), str(s["failures"]),
                     *(_cell(s[k]) for k in ("p50_ms", "p95_ms", "p99_ms", "p999_ms",
                                             "max_ms")),
                     *(_cell(s["locust"][k]) for k in ("p50_ms", "p95_ms", "p99_ms"))])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["authstate HDR latency (ms, 3 significant digits; Locust's bucketed figures "
             "on the right)"]
    for row in rows:
        lines.append("  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i])
                               for i, c in enumerate(row)))
    if any(s.get("corrected") for s in ops.values()):
        lines.append("open model: corrected (since intended start) p99 per operation: " +
                     ", ".join(f"{n} {_cell(s['corrected']['p99_ms'])}"
                               for n, s in ops.items() if s.get("corrected")))
    return "\n".join(lines)
