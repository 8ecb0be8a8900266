"""The driver: every call the workload makes on the target, recorded Jepsen-style.

Each call is an `invoke` in the History before it starts and exactly one completion after:
- `ok`: a read returned (its result as digests, absent = None, and `target.last_source()` when
  the target has it), or a write returned (acknowledged: the target promises it is durable);
- `fail`: any error on a read (reads change nothing), or a write error that says
  `outcome == "failed"` (the harness's StoreError: definitely not applied) or is a refusal by
  what it carries (TypeError/ValueError, SQLSTATE class 22/23: authstate/foreign_errors.py);
- `info`: any other write error, a timeout, an unexpected exception: it may have been applied.
Writes that raised are not retried here: the next message makes new writes, so the checker sees
what the target really did. A call that hangs longer than `op_timeout_s` is cancelled and
recorded as `info` (write) / `fail` (read), and counted in `stats.hung`: a target whose calls
hang is reported, not waited for.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.authstate.foreign_errors import write_outcome
from harness.digests import decoded, digest, is_fresh
from harness.metrics.history import (
    CREDS,
    READ_CREDS,
    READ_KEYS,
    WRITE_CREDS,
    WRITE_KEYS,
    History,
    KeyRef,
    OpHandle,
    error_text,
)

Outcome = Literal["ok", "fail", "info"]
DEFAULT_OP_TIMEOUT_S = 30.0


class Hung(Exception):
    """A target call that did not return within the driver's bound (it was cancelled)."""

    def __init__(self, waited_s: float) -> None:
        super().__init__(f"no answer within {waited_s:g} s (driver timeout; call cancelled)")


@dataclass
class DriverStats:
    """What the driver saw, beyond the history: for the report and for assertions."""

    outcomes: Counter[str] = field(default_factory=Counter)  # "read ok", "write info", ...
    errors: Counter[str] = field(default_factory=Counter)  # exception type names
    hung: int = 0  # calls cancelled after op_timeout_s

    def to_dict(self) -> dict[str, Any]:
        return {"outcomes": dict(self.outcomes), "errors": dict(self.errors), "hung": self.hung}


def _is_falsy(value: Any) -> bool:
    """JavaScript falsiness of a keys.set value: null/undefined, false, 0, "" mean delete."""
    return value is None or value is False or value == 0 or value == ""


def _forms_row(ref: KeyRef, value: Any) -> list[list[Any]]:
    """`[[type, id, digest if decoded, [forms]]]` when the value holds bytes in an un-decoded
    form (a Buffer object, a base64 text ...), else []: lets the checker name a wrong type."""
    loose, forms = decoded(value)
    return [[ref[0], ref[1], digest(loose), sorted(forms)]] if forms else []


class Driver:
    """Wraps one open target; one Driver per target (a child process has its own)."""

    def __init__(self, target: Any, history: History, *,
                 op_timeout_s: float = DEFAULT_OP_TIMEOUT_S) -> None:
        self.target = target
        self.history = history
        self.op_timeout_s = op_timeout_s
        self.stats = DriverStats()
        last_source = getattr(target, "last_source", None)
        self._last_source: Callable[[], str | None] | None = (
            last_source if callable(last_source) else None)

    def _source(self) -> str | None:
        if self._last_source is None:
            return None
        try:
            source = self._last_source()
        except Exception:  # a target's bookkeeping bug must not kill the workload
            return None
        return None if source is None else str(source)

    def _failed(self, handle: OpHandle, exc: BaseException, *, write: bool) -> Outcome:
        self.stats.errors[type(exc).__name__] += 1
        if isinstance(exc, Hung):
            outcome: Outcome = "info" if write else "fail"
            (handle.info if write else handle.fail)(str(exc))
        elif write:  # a foreign store's refusal (TypeError, SQLSTATE 22/23) wrote nothing
            outcome = handle.raised(exc, outcome=write_outcome(exc))
        else:
            handle.fail(error_text(exc))
            outcome = "fail"
        self.stats.outcomes[f"{'write' if write else 'read'} {outcome}"] += 1
        return outcome

    async def _bounded(self, call: Any) -> Any:
        bound = asyncio.timeout(self.op_timeout_s)
        try:
            async with bound:
                return await call
        except TimeoutError:
            if not bound.expired():
                raise  # the target's own timeout: an ordinary error
            self.stats.hung += 1
            raise Hung(self.op_timeout_s) from None

    # -- creds -----------------------------------------------------------------------------------
    async def load(self, process: int, company: str) -> tuple[Outcome, Any]:
        """`target.load(company)` as a read-creds op: (outcome, state or None). Fresh creds are
        recorded as absent with meta {"fresh": True}."""
        handle = self.history.invoke(process, company, READ_CREDS, [CREDS])
        failed, state = await self._read(handle, self.target.load(company))
        if failed is not None:
            return failed, None
        source = self._source()
        creds = getattr(state, "creds", None)
        fresh = is_fresh(creds)
        meta: dict[str, Any] = {"fresh": fresh}
        if not fresh and (forms := _forms_row(CREDS, creds)):
            meta["forms"] = forms
        handle.ok({CREDS: None if fresh else digest(creds)}, source, meta=meta)
        self.stats.outcomes["read ok"] += 1
        return "ok", state

    async def save_creds(self, process: int, company: str, state: Any) -> Outcome:
        handle = self.history.invoke(process, company, WRITE_CREDS, [CREDS],
                                     {CREDS: digest(state.creds)})
        return await self._write(handle, state.save_creds())

    # -- keys ------------------------------------------------------------------------------------
    async def get(self, process: int, company: str, state: Any, key_type: str,
                  ids: Iterable[str]) -> tuple[Outcome, dict[str, Any] | None]:
        ids = list(ids)
        handle = self.history.invoke(process, company, READ_KEYS, [(key_type, i) for i in ids])
        failed, got = await self._read(handle, state.keys.get(key_type, ids))
        if failed is not None:
            return failed, None
        source = self._source()
        got = dict(got or {})
        result: dict[KeyRef, str | None] = {
            (key_type, i): (None if _is_falsy(got.get(i)) else digest(got[i])) for i in ids}
        forms = [form for i in ids if not _is_falsy(got.get(i))
                 for form in _forms_row((key_type, i), got[i])]
        handle.ok(result, source, meta={"forms": forms} if forms else None)
        self.stats.outcomes["read ok"] += 1
        return "ok", got

    async def set(self, process: int, company: str, state: Any,
                  data: Mapping[str, Mapping[str, Any]], *,
                  on_invoke: Callable[[], None] | None = None) -> Outcome:
        """`state.keys.set(data)` as a write-keys op (falsy value = delete = None).
        `on_invoke` runs right after the invoke is recorded, before the call starts."""
        refs: list[KeyRef] = []
        value: dict[KeyRef, str | None] = {}
        for key_type, entries in data.items():
            for key_id, v in entries.items():
                ref = (key_type, key_id)
                refs.append(ref)
                value[ref] = None if _is_falsy(v) else digest(v)
        handle = self.history.invoke(process, company, WRITE_KEYS, refs, value)
        if on_invoke is not None:
            on_invoke()
        return await self._write(handle, state.keys.set(data))

    async def _read(self, handle: OpHandle, call: Any) -> tuple[Outcome | None, Any]:
        """Await a read, bounded: (None, its answer), or (how it failed, None) recorded."""
        try:
            return None, await self._bounded(call)
        except asyncio.CancelledError:
            handle.fail("cancelled (workload stopped)")
            raise
        except Exception as exc:
            return self._failed(handle, exc, write=False), None

    async def _write(self, handle: OpHandle, call: Any) -> Outcome:
        try:
            await self._bounded(call)
        except asyncio.CancelledError:
            handle.info("cancelled in flight (workload stopped)")
            raise
        except Exception as exc:
            return self._failed(handle, exc, write=True)
        handle.ok(source=self._source())
        self.stats.outcomes["write ok"] += 1
        return "ok"
