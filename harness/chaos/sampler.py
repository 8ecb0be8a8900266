"""Samples the target's `status()` every 100 ms: breaker state, mode, journal depth.

The same 100 ms tick measures the harness's own event-loop lag (how late the tick woke up):
on a busy machine the workers' latencies include that lag, and the report says how large it was.
Targets without `status()` have no samples (their timeline shows operations only). Breaker
transitions are taken from `status()["transitions"]` (exact monotonic times, kept by the
target in a bounded ring) and merged across samples, so none is lost between two samples
unless more than the ring's size happen within 100 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from harness.metrics.latency import nearest_rank

log = logging.getLogger("harness.chaos")

INTERVAL_S = 0.1


def _dig(status: Any, *path: str) -> Any:
    node = status
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def mode_of(target: Any) -> str | None:
    """status()["mode"] when the target has one (reported, and used to time phases only)."""
    status = getattr(target, "status", None)
    if not callable(status):
        return None
    with contextlib.suppress(Exception):
        mode = status().get("mode")
        return mode if isinstance(mode, str) else None
    return None


class StatusSampler:
    def __init__(self, target: Any, interval_s: float = INTERVAL_S) -> None:
        status = getattr(target, "status", None)
        self._status = status if callable(status) else None
        self.interval_s = interval_s
        self.samples: list[dict[str, Any]] = []
        self._transitions: dict[tuple[float, str], dict[str, Any]] = {}
        self.last: dict[str, Any] | None = None
        self.errors = 0
        self.lag_ms: list[float] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def available(self) -> bool:
        return self._status is not None

    def sample(self) -> dict[str, Any] | None:
        """Take one sample now (also used once more after the flush)."""
        if self._status is None:
            return None
        try:
            status = self._status()
        except Exception as exc:  # a target's status bug must not stop the scenario
            self.errors += 1
            if self.errors == 1:
                log.warning("target status() raised %s; its samples are missing",
                            type(exc).__name__)
            return None
        if not isinstance(status, dict):
            return None
        self.last = status
        for t in _dig(status, "transitions") or ():
            if isinstance(t, dict) and "at" in t and "state" in t:
                self._transitions.setdefault((float(t["at"]), str(t["state"])), dict(t))
        row = {"t": time.monotonic(), "mode": status.get("mode"),
               "breaker": _dig(status, "breaker", "state"),
               "journal_depth": _dig(status, "journal", "depth"),
               "conflicts": status.get("conflicts")}
        self.samples.append(row)
        return row

    async def _loop(self) -> None:
        next_at = time.monotonic()
        while True:
            now = time.monotonic()
            self.lag_ms.append(max(0.0, now - next_at) * 1000)
            self.sample()
            next_at = max(next_at + self.interval_s, now)
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="chaos-status-sampler")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def transitions(self) -> list[dict[str, Any]]:
        """Every breaker transition seen, oldest first: {"at", "state", "reason"}."""
        return [self._transitions[k] for k in sorted(self._transitions)]

    def lag_summary(self) -> dict[str, Any]:
        """Event-loop lag of the sampling tick: p50 / p99 / max in ms."""
        lags = sorted(self.lag_ms)
        if not lags:
            return {"p50": None, "p99": None, "max": None, "count": 0}
        return {"p50": round(nearest_rank(lags, 500), 1), "p99": round(nearest_rank(lags, 990), 1),
                "max": round(lags[-1], 1), "count": len(lags)}

    def peak(self, field: str) -> Any:
        values = [s[field] for s in self.samples if isinstance(s.get(field), (int, float))]
        return max(values) if values else None
