"""A run as fixed time buckets (100 ms by default): what a plot of a fault run needs.

Per bucket, from the history's first event: ok / fail / info completions, p50 / p99 latency
of the ops that completed in it, whether a fault window was active at any moment of it, and
the breaker state and journal depth as of the bucket's end (the last status sample, or breaker
transition, at or before it). Times in the output are seconds from that origin, the same
origin as ``fault_windows`` so the two line up on one axis.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from typing import Any

from harness.metrics.history import History, Op
from harness.metrics.latency import nearest_rank
from harness.metrics.windows import (
    NS,
    StatusSample,
    WindowLike,
    as_window,
    breaker_states,
    episodes,
    normalize_samples,
)

MAX_BUCKETS = 200_000


@dataclasses.dataclass
class Timeline:
    origin_ns: int
    bucket_ms: int
    buckets: list[dict[str, Any]]       # {t, ok, fail, info, p50_ms, p99_ms, fault, breaker,
                                        #  journal_depth}
    fault_windows: list[dict[str, Any]]  # {kind, start_s, end_s} on the same axis

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def timeline(history: History | Sequence[Op], windows: Iterable[WindowLike] | None = None, *,
             samples: Iterable[StatusSample] = (), transitions: Iterable[tuple[int, str]] = (),
             bucket_ms: int = 100, origin_ns: int | None = None) -> Timeline:
    """Bucket the history; ``windows`` None: the history's own nemesis events."""
    ops = history.ops() if isinstance(history, History) else list(history)
    if windows is None and isinstance(history, History):
        windows = history.fault_windows()
    raw = [as_window(w) for w in windows or ()]
    eps = episodes(raw)
    status = normalize_samples(samples)
    changes = breaker_states(status, transitions)
    times = [op.invoke_ns for op in ops] + [op.complete_ns for op in ops if op.complete_ns]
    times += [w.injected_ns for w in eps] + [w.cleared_ns for w in eps if w.cleared_ns]
    if isinstance(history, History) and (span := history.span_ns()):
        times += list(span)
    if not times:
        return Timeline(origin_ns or 0, bucket_ms, [], [])
    origin = min(times) if origin_ns is None else origin_ns
    width = bucket_ms * 1_000_000
    count = (max(times) - origin) // width + 1
    if count > MAX_BUCKETS:
        raise ValueError(f"timeline of {count} buckets: the history spans "
                         f"{(max(times) - origin) / NS:.0f} s; are all times from "
                         "time.monotonic_ns()? Use a wider bucket_ms for long runs")
    outcomes = [{"ok": 0, "fail": 0, "info": 0} for _ in range(count)]
    latencies: list[list[int]] = [[] for _ in range(count)]
    for op in ops:
        if op.complete_ns is None or op.outcome is None or op.complete_ns < origin:
            continue
        b = (op.complete_ns - origin) // width
        outcomes[b][op.outcome] += 1
        latencies[b].append(op.complete_ns - op.invoke_ns)
    active = [False] * count
    for w in eps:
        first = max(0, (w.injected_ns - origin) // width)
        last = count - 1 if w.cleared_ns is None else min(count - 1,
                                                          (w.cleared_ns - origin) // width)
        for b in range(first, last + 1):
            active[b] = True
    sample_times = [t for t, _ in status]
    change_times = [t for t, _ in changes]
    buckets: list[dict[str, Any]] = []
    for b in range(count):
        bucket_end = origin + (b + 1) * width - 1
        lat = sorted(latencies[b])
        i = bisect_right(sample_times, bucket_end)
        sample = status[i - 1][1] if i else {}
        j = bisect_right(change_times, bucket_end)
        breaker = changes[j - 1][1] if j else None
        buckets.append({
            "t": round(b * bucket_ms / 1000, 3), **outcomes[b],
            "p50_ms": round(nearest_rank(lat, 500) / 1e6, 3) if lat else None,
            "p99_ms": round(nearest_rank(lat, 990) / 1e6, 3) if lat else None,
            "fault": active[b], "breaker": breaker,
            "journal_depth": sample.get("journal_depth")})
    return Timeline(origin, bucket_ms, buckets, relative_windows(raw, origin))


def relative_windows(windows: Iterable[WindowLike], origin_ns: int) -> list[dict[str, Any]]:
    """``[{kind, start_s, end_s}]`` in seconds from ``origin_ns`` (end None: never cleared)."""
    return [{"kind": w.kind, "start_s": round((w.injected_ns - origin_ns) / NS, 3),
             "end_s": None if w.cleared_ns is None else round((w.cleared_ns - origin_ns) / NS, 3)}
            for w in sorted((as_window(w) for w in windows), key=lambda w: w.injected_ns)]
