"""Baileys-shaped traffic for one company at a time, every operation named and timed.

The chaos workload's companies and messages (harness/chaos/workload.py) are reused as they are:
`LoadWorkload` adds companies one by one (one Locust user = one company), runs one message on
request instead of its own loop, and adds the load profiles' extra shapes (first connect, group
first send, reconnect storm). Its driver, `TimedDriver`, is the chaos driver (so the operation
history and checker work on load traffic unchanged) timing each store call *inside* the
coroutine, around the awaited call only: digests and history bookkeeping are outside the time,
and so is the bridge's hand-over between gevent and asyncio.

Operation names are what a Locust user sees in its statistics: `load`, `creds.save`,
`keys.get <type>`, `keys.set <type>[+<type>...]`, with ` x<N>` for pre-key batches (5, 60, 812)
and ` batch` for other writes of 5 or more keys.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.chaos.workload import FULL_PRE_KEYS, Company, Workload, WorkloadConfig
from harness.metrics.history import History, OpHandle, error_text
from harness.target_driver import Driver, Outcome

BATCH_AT = 5  # writes of this many keys or more get a size suffix in their name


@dataclass(frozen=True, slots=True)
class OpResult:
    """One store call: its name, outcome, and its service time measured around the call."""

    name: str
    ok: bool
    start_ns: int  # time.monotonic_ns() when the call started
    elapsed_ns: int
    error: str | None = None


_RESULTS: contextvars.ContextVar[list[OpResult] | None] = contextvars.ContextVar(
    "load_results", default=None)
_LAST: contextvars.ContextVar[tuple[int, int, BaseException | None]] = contextvars.ContextVar(
    "load_last_call")


def keys_get_name(key_type: str, ids: list[str]) -> str:
    return f"keys.get {key_type}" + (f" x{len(ids)}" if len(ids) >= 100 else "")


def keys_set_name(data: Mapping[str, Mapping[str, Any]]) -> str:
    types = "+".join(data)
    n = sum(len(v) for v in data.values())
    if n < BATCH_AT:
        return f"keys.set {types}"
    if types == "pre-key":
        return f"keys.set pre-key x{n}"
    return f"keys.set {types} batch"


def collect() -> list[OpResult]:
    """Start collecting the OpResults of the current task; returns the list they go to."""
    results: list[OpResult] = []
    _RESULTS.set(results)
    return results


class DiscardingHistory(History):
    """A History that keeps nothing: load runs without a checker need no record of every op
    (a 60 s run at 3k ops/s would hold ~180k events in memory for nothing)."""

    def invoke(self, process: int, company: str, f: str, keys: Any, value: Any = None, *,
               meta: Any = None, at_ns: int | None = None) -> OpHandle:
        return OpHandle(self, 0, int(process), f)

    def _complete(self, handle: OpHandle, outcome: Any, **_: Any) -> None:
        handle._done = True


class TimedDriver(Driver):
    """The chaos driver, reporting each call as an OpResult to the task's collector.

    Without a history to keep (DiscardingHistory) it skips the chaos driver's bookkeeping
    (a digest of every value written and read: ~10 % of a load process's CPU) and calls the
    store directly, still through `_bounded` (same timing, same hang bound)."""

    def __init__(self, target: Any, history: History, **kwargs: Any) -> None:
        super().__init__(target, history, **kwargs)
        self.light = isinstance(history, DiscardingHistory)

    async def _light(self, name: str, call: Any) -> tuple[Outcome, Any]:
        try:
            value = await self._bounded(call)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.stats.errors[type(exc).__name__] += 1
            self._report(name, "fail")
            return "fail", None
        self._report(name, "ok")
        return "ok", value

    async def _bounded(self, call: Any) -> Any:
        started = time.monotonic_ns()
        t0 = time.perf_counter_ns()
        error: BaseException | None = None
        try:
            return await super()._bounded(call)
        except BaseException as exc:
            error = exc
            raise
        finally:
            _LAST.set((started, time.perf_counter_ns() - t0, error))

    @staticmethod
    def _report(name: str, outcome: Outcome) -> None:
        results = _RESULTS.get()
        last = _LAST.get(None)
        if results is None or last is None:
            return
        started, elapsed, error = last
        results.append(OpResult(name, outcome == "ok", started, elapsed,
                                None if error is None else error_text(error)))

    async def load(self, process: int, company: str) -> tuple[Outcome, Any]:
        if self.light:
            return await self._light("load", self.target.load(company))
        outcome, state = await super().load(process, company)
        self._report("load", outcome)
        return outcome, state

    async def save_creds(self, process: int, company: str, state: Any) -> Outcome:
        if self.light:
            return (await self._light("creds.save", state.save_creds()))[0]
        outcome = await super().save_creds(process, company, state)
        self._report("creds.save", outcome)
        return outcome

    async def get(self, process: int, company: str, state: Any, key_type: str,
                  ids: Iterable[str]) -> tuple[Outcome, dict[str, Any] | None]:
        ids = list(ids)
        if self.light:
            outcome, got = await self._light(keys_get_name(key_type, ids),
                                             state.keys.get(key_type, ids))
            return outcome, (None if got is None else dict(got))
        outcome, got = await super().get(process, company, state, key_type, ids)
        self._report(keys_get_name(key_type, ids), outcome)
        return outcome, got

    async def set(self, process: int, company: str, state: Any,
                  data: Mapping[str, Mapping[str, Any]], **kwargs: Any) -> Outcome:
        if self.light:
            if kwargs.get("on_invoke") is not None:
                kwargs["on_invoke"]()
            return (await self._light(keys_set_name(data), state.keys.set(data)))[0]
        outcome = await super().set(process, company, state, data, **kwargs)
        self._report(keys_set_name(data), outcome)
        return outcome


class LoadWorkload(Workload):
    """The chaos workload, driven one company and one message at a time."""

    def __init__(self, target: Any, history: History, *, run_tag: str, process_base: int = 0,
                 config: WorkloadConfig | None = None, full_pre_key_share: float = 0.05,
                 seed: int = 0) -> None:
        config = config or WorkloadConfig(seed=seed)
        super().__init__(target, [], history, config=config, run_tag=run_tag,
                         process_base=process_base,
                         driver=TimedDriver(target, history, op_timeout_s=config.op_timeout_s))
        self.full_pre_key_share = full_pre_key_share
        self._handlers = {
            "outgoing": self._outgoing, "incoming": self._incoming,
            "group_send": self._group_send, "group_incoming": self._group_incoming,
            "creds_save": self._creds_save, "reconnect": self._reconnect,
            "group_first_send": self._group_first_send, "reconnect_full": self.reconnect_full}

    def add_company(self, company_id: str) -> Company:
        index = len(self.companies)
        company = Company(company_id, f"5511{900_000_000 + index:09d}", self.new_process(),
                          random.Random(f"{self.config.seed}/{company_id}"))
        self.companies.append(company)
        return company

    async def setup_company(self, company: Company, *, pair: bool = False) -> None:
        """Steady setup (the chaos one: creds, pre-keys, sessions, groups); `pair` uploads
        Baileys' 812 pre-keys and reads them back, as a first connect does."""
        full = pair or company.rng.random() < self.full_pre_key_share
        index = 0 if full else self.config.full_pre_key_companies  # chaos: index < N = full
        await self._setup_company(index, company)
        if pair:
            ids = [str(i) for i in company.pre_key_ids[:FULL_PRE_KEYS]]
            await self.driver.get(company.process, company.id, company.state, "pre-key", ids)

    async def message(self, company: Company, kind: str) -> None:
        await self._handlers[kind](company)
        self.messages[kind] += 1

    def pick(self, company: Company, mix: Mapping[str, int]) -> str:
        return company.rng.choices(list(mix), list(mix.values()))[0]

    async def reconnect_full(self, company: Company) -> None:
        """A restart: creds loaded, then every session of the company's contacts re-read."""
        await self._reconnect(company)
        for contact in company.contacts:
            await self._read(company, "session", contact.devices)

    async def _group_first_send(self, company: Company) -> None:
        """A first send to a (new) 50-member group: sender key, memory and ~100 sessions in
        one keys.set (Baileys' transaction layer commits them together)."""
        rng, v = company.rng, self.values
        group_jid = f"{rng.randrange(10**17, 10**18)}@g.us"
        devices = [f"55{rng.randrange(10**10, 10**11)}.{d}" for _ in range(50) for d in (0, 1)]
        own = f"{group_jid}::{company.phone}::0"
        await self._write(company, {
            "sender-key": {own: v.sender_key()},
            "sender-key-memory": {group_jid: v.sender_key_memory(devices)},
            "session": {a: v.session(900) for a in devices}})
