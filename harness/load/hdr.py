"""Latency you can trust: HDR histograms per operation and per phase, mergeable exactly.

Locust buckets response times (1 ms steps below 100 ms, 10 ms to 1 s) and computes percentiles
from those buckets: a 0.2 ms point read and a 0.9 ms one are the same number there. Here every
operation is recorded in microseconds in an HdrHistogram with 3 significant digits (values are
exact to 0.1 %), one histogram per (operation, phase) and per kind (`raw` service time,
`corrected` = since the intended start in the open model). Histograms of the same layout add
exactly, so the counts of N worker processes merged here equal the sum of their counts: merged
percentiles are those of one histogram that saw every operation.

A per-second timeline (ok / fail counts and a 2-digit histogram for the second's p99) is kept
beside, keyed by wall-clock second so processes (and machines) line up. So are 2-digit
histograms of every operation per (kind, phase, second): time batches of a run, from which the
gates' percentiles get their ~95 % interval (`batch_percentiles`).

Thread-safety: one process records from its asyncio thread while Locust's greenlets take
deltas; `take_delta` swaps under a real (unpatched) lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 120_000_000  # 120 s: above any operation deadline we would keep waiting for
DIGITS = 3
TIMELINE_DIGITS = 2  # per-second p99 for a plot: 1 % is plenty, and 100x smaller
KINDS = ("raw", "corrected")
CURVE_PERCENTILES = (50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99, 100.0)
ALL = "all"  # the operation name under which every operation is also recorded


def new_histogram(digits: int = DIGITS) -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, digits)


def _clamp(us: float) -> int:
    return min(max(round(us), LOWEST_US), HIGHEST_US)


def encode(hist: HdrHistogram) -> str:
    data = hist.encode()
    return data.decode() if isinstance(data, bytes) else str(data)


def decode(text: str) -> HdrHistogram:
    return HdrHistogram.decode(text.encode() if isinstance(text, str) else text)


def _lock() -> Any:
    """A real lock even under gevent's monkey-patching (the asyncio thread uses it too)."""
    try:
        from gevent import monkey

        return monkey.get_original("threading", "Lock")()
    except ImportError:  # pragma: no cover
        return threading.Lock()


@dataclass
class _Counts:
    ok: int = 0
    fail: int = 0


@dataclass
class LatencyRecorder:
    """Histograms keyed (kind, op, phase); counts keyed (op, phase); timeline keyed second."""

    hists: dict[tuple[str, str, str], HdrHistogram] = field(default_factory=dict)
    counts: dict[tuple[str, str], _Counts] = field(default_factory=dict)
    timeline: dict[int, list[Any]] = field(default_factory=dict)  # sec -> [ok, fail, hist]
    errors: dict[str, int] = field(default_factory=dict)  # "op: message" -> count
    seconds: dict[tuple[str, str, int], HdrHistogram] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = _lock()

    # -- recording --------------------------------------------------------------------------------
    def record(self, op: str, phase: str, raw_us: float, *, ok: bool, second: int,
               corrected_us: float | None = None, error: str | None = None) -> None:
        """One finished operation: its service time, and (open model) its time since the
        intended start. Failed operations are counted and timed too."""
        raw = _clamp(raw_us)
        corrected = None if corrected_us is None else max(raw, _clamp(corrected_us))
        with self._lock:
            for name in (op, ALL):
                self._hist("raw", name, phase).record_value(raw)
                if corrected is not None:
                    self._hist("corrected", name, phase).record_value(corrected)
                counts = self.counts.get((name, phase))
                if counts is None:
                    counts = self.counts[(name, phase)] = _Counts()
                if ok:
                    counts.ok += 1
                else:
                    counts.fail += 1
            slot = self.timeline.get(second)
            if slot is None:
                slot = self.timeline[second] = [0, 0, new_histogram(TIMELINE_DIGITS)]
            slot[0 if ok else 1] += 1
            slot[2].record_value(raw)
            self._second("raw", phase, second).record_value(raw)
            if corrected is not None:
                self._second("corrected", phase, second).record_value(corrected)
            if error is not None:
                key = f"{op}: {error}"
                self.errors[key] = self.errors.get(key, 0) + 1

    def _second(self, kind: str, phase: str, second: int) -> HdrHistogram:
        key = (kind, phase, second)
        hist = self.seconds.get(key)
        if hist is None:
            hist = self.seconds[key] = new_histogram(TIMELINE_DIGITS)
        return hist

    def _hist(self, kind: str, op: str, phase: str) -> HdrHistogram:
        key = (kind, op, phase)
        hist = self.hists.get(key)
        if hist is None:
            hist = self.hists[key] = new_histogram()
        return hist

    # -- moving between processes -----------------------------------------------------------------
    def to_wire(self) -> dict[str, Any]:
        """JSON-ready, compact (histograms HDR-encoded: compressed, base64)."""
        with self._lock:
            return {
                "hists": [[k, o, p, encode(h)] for (k, o, p), h in self.hists.items()],
                "counts": [[o, p, c.ok, c.fail] for (o, p), c in self.counts.items()],
                "timeline": [[s, v[0], v[1], encode(v[2])] for s, v in self.timeline.items()],
                "errors": dict(self.errors),
                "seconds": [[k, p, s, encode(h)] for (k, p, s), h in self.seconds.items()],
            }

    def take_delta(self) -> dict[str, Any]:
        """What was recorded since the last delta, as `to_wire`; this recorder starts empty."""
        with self._lock:
            fresh = LatencyRecorder()
            old = LatencyRecorder(self.hists, self.counts, self.timeline, self.errors,
                                  self.seconds)
            self.hists, self.counts = fresh.hists, fresh.counts
            self.timeline, self.errors = fresh.timeline, fresh.errors
            self.seconds = fresh.seconds
        return old.to_wire()

    def absorb(self, wire: Mapping[str, Any]) -> None:
        """Add another recorder's `to_wire()` to this one (exact: counts add)."""
        with self._lock:
            for kind, op, phase, text in wire.get("hists", ()):
                self._hist(kind, op, phase).add(decode(text))
            for op, phase, ok, fail in wire.get("counts", ()):
                counts = self.counts.setdefault((op, phase), _Counts())
                counts.ok += int(ok)
                counts.fail += int(fail)
            for second, ok, fail, text in wire.get("timeline", ()):
                slot = self.timeline.get(int(second))
                if slot is None:
                    slot = self.timeline[int(second)] = [0, 0, new_histogram(TIMELINE_DIGITS)]
                slot[0] += int(ok)
                slot[1] += int(fail)
                slot[2].add(decode(text))
            for key, n in (wire.get("errors") or {}).items():
                self.errors[key] = self.errors.get(key, 0) + int(n)
            for kind, phase, second, text in wire.get("seconds", ()):
                self._second(kind, phase, int(second)).add(decode(text))

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> LatencyRecorder:
        recorder = cls()
        recorder.absorb(wire)
        return recorder

    # -- reading ----------------------------------------------------------------------------------
    def ops(self) -> list[str]:
        return sorted({o for (o, _p) in self.counts if o != ALL})

    def phases(self) -> list[str]:
        return sorted({p for (_o, p) in self.counts})

    def merged(self, kind: str, op: str, phases: Iterable[str] | None = None) -> HdrHistogram:
        """One histogram of `op` over `phases` (all phases when None)."""
        wanted = None if phases is None else set(phases)
        out = new_histogram()
        for (k, o, p), hist in self.hists.items():
            if k == kind and o == op and (wanted is None or p in wanted):
                out.add(hist)
        return out

    def count(self, op: str, phases: Iterable[str] | None = None) -> tuple[int, int]:
        wanted = None if phases is None else set(phases)
        ok = fail = 0
        for (o, p), c in self.counts.items():
            if o == op and (wanted is None or p in wanted):
                ok += c.ok
                fail += c.fail
        return ok, fail


def batch_percentiles(recorder: LatencyRecorder, kind: str, phases: Iterable[str],
                      percentile: float, batches: int = 10) -> list[float]:
    """`percentile` (ms) of each of up to `batches` contiguous time batches of the run's
    seconds in `phases` (all operations): independent-enough draws of the statistic, whose
    spread gives the interval of the whole run's figure (harness.metrics.intervals)."""
    wanted = set(phases)
    seconds = sorted({s for (k, p, s) in recorder.seconds if k == kind and p in wanted})
    if not seconds:
        return []
    n = min(batches, len(seconds))
    out = []
    for i in range(n):
        part = set(seconds[i * len(seconds) // n:(i + 1) * len(seconds) // n])
        merged = new_histogram(TIMELINE_DIGITS)
        for (k, p, s), hist in recorder.seconds.items():
            if k == kind and p in wanted and s in part:
                merged.add(hist)
        if merged.get_total_count():
            out.append(ms(merged.get_value_at_percentile(percentile)))
    return out


def ms(us: float | int) -> float:
    return round(us / 1000.0, 3)


def percentiles_ms(hist: HdrHistogram) -> dict[str, float | None]:
    """p50 / p95 / p99 / p99.9 / max in milliseconds (None for an empty histogram)."""
    if hist.get_total_count() == 0:
        return dict.fromkeys(("p50_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms"))
    return {"p50_ms": ms(hist.get_value_at_percentile(50.0)),
            "p95_ms": ms(hist.get_value_at_percentile(95.0)),
            "p99_ms": ms(hist.get_value_at_percentile(99.0)),
            "p999_ms": ms(hist.get_value_at_percentile(99.9)),
            "max_ms": ms(hist.get_max_value())}


def curve(hist: HdrHistogram) -> list[list[float]]:
    """[[percentile, ms], ...] at CURVE_PERCENTILES (what a log-scale plot needs)."""
    if hist.get_total_count() == 0:
        return []
    return [[p, ms(hist.get_max_value() if p >= 100.0 else hist.get_value_at_percentile(p))]
            for p in CURVE_PERCENTILES]
