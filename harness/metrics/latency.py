"""Exact percentiles (nearest rank) over every recorded sample, per phase of a fault run.

We keep every sample, so no histogram approximation is needed: the p99 of 40 ops is the 40th
smallest (nearest rank), not an interpolated value no op ever had. `spread` is the summary the
gates read: a missing value (a company that never recovered) makes p95 and max None, and a
gated figure without a value never passes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from harness.metrics.history import History, Op
from harness.metrics.windows import WindowLike, episodes

LATENCY_PERMILLE = (("p50", 500), ("p95", 950), ("p99", 990), ("p99.9", 999))
PHASES = ("before", "during", "after")


def nearest_rank(sorted_values: Sequence[float], permille: int) -> float:
    """The value at nearest rank ceil(permille/1000 * n) of an ascending, non-empty sequence
    (integer arithmetic, so p99.9 of 1000 samples is the 999th, not the 1000th)."""
    if not sorted_values:
        raise ValueError("nearest_rank of no values")
    rank = max(1, -(-permille * len(sorted_values) // 1000))
    return sorted_values[rank - 1]


def spread(values: Iterable[float | None]) -> dict[str, Any]:
    """``{"p50", "p95", "max", "count", "missing"}`` over companies × windows × repetitions.

    None values are *missing* (not recovered / not detected) and rank above every number:
    any missing value makes p95 and max None; p50 is None when the missing ones reach it.
    No values at all: everything None, count 0.
    """
    items = list(values)
    present = sorted(float(v) for v in items if v is not None)
    missing = len(items) - len(present)
    result: dict[str, Any] = {"p50": None, "p95": None, "max": None, "count": len(items),
                              "missing": missing}
    if not items:
        return result
    rank50 = max(1, -(-500 * len(items) // 1000))
    if rank50 <= len(present):
        result["p50"] = present[rank50 - 1]
    if not missing:
        result["p95"] = nearest_rank(present, 950)
        result["max"] = present[-1]
    return result


def latency_stats(samples_ns: Iterable[int]) -> dict[str, Any]:
    """p50/p95/p99/p99.9/max in milliseconds (3 decimals) and count; None values when empty."""
    ordered = sorted(samples_ns)
    stats: dict[str, Any] = {}
    for name, permille in LATENCY_PERMILLE:
        stats[name] = round(nearest_rank(ordered, permille) / 1e6, 3) if ordered else None
    stats["max"] = round(ordered[-1] / 1e6, 3) if ordered else None
    stats["count"] = len(ordered)
    return stats


def phase_of(invoke_ns: int, injected: Sequence[int], windows: Sequence[Any]) -> str:
    """before the first injection / during a window / after the last clear / between.

    ``injected``: the windows' injection times, ascending (``windows`` sorted alike); windows
    may overlap. A window never cleared makes everything after its injection "during"."""
    if not windows or invoke_ns < injected[0]:
        return "before"
    if any(w.covers(invoke_ns) for w in windows):
        return "during"
    if all(w.cleared_ns is not None and invoke_ns > w.cleared_ns for w in windows):
        return "after"
    return "between"


def latency_by_phase(history: History | Sequence[Op],
                     windows: Iterable[WindowLike] | None = None) -> dict[str, Any]:
    """Latency of completed ops (any outcome: a hang that ends in a timeout is latency too)
    by the phase of their invoke: ``{phase: {p50..max, count, "by_f": {f: {...}}}}``.
    Phases before/during/after are always present; "between" (after one window cleared and
    before the next) only when there is such an op. ``windows`` None: the history's own
    nemesis events."""
    ops = history.ops() if isinstance(history, History) else list(history)
    if windows is None and isinstance(history, History):
        windows = history.fault_windows()
    eps = episodes(windows or ())
    injected = [w.injected_ns for w in eps]
    samples: dict[str, dict[str, list[int]]] = {}
    for op in ops:
        if op.complete_ns is None:
            continue
        phase = phase_of(op.invoke_ns, injected, eps)
        by_f = samples.setdefault(phase, {})
        by_f.setdefault(op.f, []).append(op.complete_ns - op.invoke_ns)
    result: dict[str, Any] = {}
    for phase in (*PHASES, "between"):
        by_f = samples.get(phase, {})
        if phase == "between" and not by_f:
            continue
        result[phase] = {**latency_stats(x for values in by_f.values() for x in values),
                         "by_f": {f: latency_stats(v) for f, v in sorted(by_f.items())}}
    return result
