"""Builds synthetic histories for the metrics tests: times in milliseconds, one line per op."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from harness.metrics.history import (
    CREDS,
    READ_CREDS,
    READ_KEYS,
    WRITE_CREDS,
    WRITE_KEYS,
    History,
    KeyRef,
)

MS = 1_000_000


def ms(value: float) -> int:
    return round(value * MS)


class Builder:
    """Each call records one complete op (invoke at `start` ms, completion at `end` ms) on a
    fresh process id, as a driver that renumbers crashed processes would."""

    def __init__(self) -> None:
        self.history = History()
        self._processes = itertools.count()

    def write(self, company: str, values: Mapping[KeyRef, str | None], start: float,
              end: float | None, outcome: str | None = "ok", *, source: str | None = "db",
              f: str = WRITE_KEYS, meta: Mapping[str, Any] | None = None) -> int:
        op = self.history.invoke(next(self._processes), company, f, list(values), dict(values),
                                 meta=meta, at_ns=ms(start))
        self._complete(op, outcome, end, source=source)
        return op.index

    def creds_write(self, company: str, value: str, start: float, end: float | None,
                    outcome: str | None = "ok", **kw: Any) -> int:
        return self.write(company, {CREDS: value}, start, end, outcome, f=WRITE_CREDS, **kw)

    def read(self, company: str, result: Mapping[KeyRef, str | None] | None, start: float,
             end: float | None, outcome: str | None = "ok", *, source: str | None = "db",
             f: str = READ_KEYS, keys: list[KeyRef] | None = None,
             meta: Mapping[str, Any] | None = None) -> int:
        op = self.history.invoke(next(self._processes), company, f,
                                 keys if keys is not None else list(result or {}),
                                 at_ns=ms(start))
        self._complete(op, outcome, end, source=source, result=result, meta=meta)
        return op.index

    def creds_read(self, company: str, value: str | None, start: float, end: float,
                   **kw: Any) -> int:
        return self.read(company, {CREDS: value}, start, end, f=READ_CREDS, **kw)

    @staticmethod
    def _complete(op: Any, outcome: str | None, end: float | None, *, source: str | None,
                  result: Mapping[KeyRef, str | None] | None = None,
                  meta: Mapping[str, Any] | None = None) -> None:
        if outcome is None:
            return  # never completed: the recorder died
        assert end is not None
        if outcome == "ok":
            op.ok(result, source, meta=meta, at_ns=ms(end))
        elif outcome == "fail":
            op.fail("StoreUnavailable: connection refused", meta=meta, at_ns=ms(end))
        else:
            op.info("StoreTimeout: no answer within 2.0 s", meta=meta, at_ns=ms(end))
