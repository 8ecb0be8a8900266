"""The event log: what happened to each proxy and connection, with both clocks.

Extension beyond Toxiproxy (read with `GET /proxies/{name}/events?since=N` or `GET /events`).
Chaos reports line these events up with client-side operation histories: `monotonic` is
CLOCK_MONOTONIC seconds (comparable across processes on the same Linux host), `wall` is Unix
time. The log is bounded (oldest events are dropped first) and sequence numbers never repeat,
so a reader polling with `since` can tell when it missed events.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from typing import Any

log = logging.getLogger("harness.faults.server")

DEFAULT_CAPACITY = 50_000


class EventLog:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._events: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._seq = itertools.count(1)

    def emit(self, type_: str, proxy: str, **data: Any) -> dict[str, Any]:
        event = {"seq": next(self._seq), "type": type_, "proxy": proxy,
                 "monotonic": time.monotonic(), "wall": time.time(), **data}
        self._events.append(event)
        if log.isEnabledFor(logging.INFO):
            details = " ".join(f"{k}={_short(v)}" for k, v in data.items())
            log.info("%s proxy=%s %s", type_, proxy, details)
        return event

    def since(self, seq: int = 0, proxy: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self._events
                if e["seq"] > seq and (proxy is None or e["proxy"] == proxy)]

    @property
    def oldest_seq(self) -> int:
        return self._events[0]["seq"] if self._events else 0


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_short(v)}" for k, v in value.items()) + "}"
    return str(value)
