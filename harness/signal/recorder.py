"""Every key read and write of the signal workload, into the operation History (digests only).

Two paths, one history format (the one the chaos checker judges):

- a Python target's store calls happen in Python (the bridge answers libsignal's reads and
  writes): `StoreDriver`, the chaos driver, records them as they happen;
- a Node.js target's store calls happen inside its sidecar: the engine returns a trace of
  each op's store calls (digests, CLOCK_MONOTONIC times, outcome), written here afterwards with
  the times they happened at (Node's hrtime and Python's monotonic_ns read the same clock).

A Jepsen "process" runs one op at a time: `Processes` hands each company's calls a process id
that is not busy, and retires an id whose op ended `info` (it may still take effect).
"""

from __future__ import annotations

import contextvars
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from harness.metrics.history import (
    CREDS,
    READ_KEYS,
    WRITE_CREDS,
    WRITE_KEYS,
    History,
    KeyRef,
)
from harness.target_driver import Driver, Outcome

_LAST_ERROR: contextvars.ContextVar[BaseException | None] = contextvars.ContextVar(
    "signal_store_error", default=None)


class Processes:
    """Process ids per company: a free one for each call, a new one after an `info`."""

    def __init__(self, first: int = 0) -> None:
        self._next = first
        self._free: dict[str, list[int]] = defaultdict(list)

    def take(self, company: str) -> int:
        free = self._free[company]
        if free:
            return free.pop()
        self._next += 1
        return self._next

    def give(self, company: str, process: int, outcome: str) -> None:
        if outcome != "info":  # an info op may still land: that process is "crashed"
            self._free[company].append(process)


class StoreDriver(Driver):
    """The chaos driver, keeping the exception of a failed call for the caller (the bridge
    hands its name and message to libsignal) and the time spent inside the store."""

    store_ns: int = 0

    def _failed(self, handle: Any, exc: BaseException, *, write: bool) -> Outcome:
        _LAST_ERROR.set(exc)
        return super()._failed(handle, exc, write=write)

    @staticmethod
    def last_error() -> BaseException | None:
        """The exception of the current task's last failed call (None if it succeeded)."""
        return _LAST_ERROR.get()

    @staticmethod
    def clear_error() -> None:
        _LAST_ERROR.set(None)

    async def timed(self, call: Any) -> Any:
        started = time.monotonic_ns()
        try:
            return await call
        finally:
            self.store_ns += time.monotonic_ns() - started


def _refs(rows: Iterable[Any]) -> list[KeyRef]:
    return [(str(r[0]), str(r[1])) for r in rows]


def record_trace(history: History, processes: Processes, trace: Iterable[Mapping[str, Any]]
                 ) -> int:
    """Write the store calls an engine op made (node: targets) into `history`; returns how
    many were recorded."""
    count = 0
    for entry in trace:
        company = str(entry["company"])
        t0, t1 = int(entry["t0"]), int(entry["t1"])
        outcome = str(entry["outcome"])
        kind = entry["f"]
        process = processes.take(company)
        if kind == "get":
            keys = _refs(entry["keys"])
            handle = history.invoke(process, company, READ_KEYS, keys, at_ns=t0)
            if outcome == "ok":
                forms = entry.get("forms")  # bytes read back un-decoded: the checker names it
                handle.ok(dict(zip(keys, entry["result"], strict=True)), at_ns=t1,
                          meta={"forms": forms} if forms else None)
            else:
                handle.fail(str(entry.get("error") or "failed"), at_ns=t1)
                outcome = "fail"
        elif kind in ("set", "save"):
            if kind == "set":
                keys = _refs(entry["keys"])
                value: dict[KeyRef, str | None] = dict(zip(keys, entry["value"], strict=True))
                f = WRITE_KEYS
            else:
                keys, value, f = [CREDS], {CREDS: entry["value"]}, WRITE_CREDS
            handle = history.invoke(process, company, f, keys, value, at_ns=t0)
            if outcome == "ok":
                handle.ok(at_ns=t1)
            elif outcome == "fail":
                handle.fail(str(entry.get("error") or "failed"), at_ns=t1)
            else:
                handle.info(str(entry.get("error") or "unknown"), at_ns=t1)
        else:  # pragma: no cover - the engine records nothing else
            raise ValueError(f"unknown trace entry {kind!r}")
        processes.give(company, process, outcome)
        count += 1
    return count

