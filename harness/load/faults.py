"""Chaos under load: the chaos suite's nemeses, injected while Locust runs.

`--fault NAME@START+DURATION` (e.g. `sever@20s+10s`): START seconds after the Locust test
started, the nemesis of chaos scenario NAME (harness/chaos/nemesis.py: the same code, on the
same fault proxy) is injected, and cleared DURATION later. The load traffic is recorded in an
operation history (harness/metrics/history.py) by every Locust process; afterwards the chaos
checker and recovery calculators judge it exactly as they judge a chaos scenario: lost writes,
stale reads, MTTD and RTO under load.

Faults available under load: the network ones (sever, blackhole, latency-spike, bandwidth,
limit-data, flap) and the role ones (terminate-backends, connection-exhaustion, read-only:
the load then logs in with a role of its own). Not: process faults (pg-kill, pg-restart need a
server the harness may stop), reset-mid-write (drives its own bulk write) and client-crash
(kills the process running the store: a Locust worker here).
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from harness.chaos.catalog import SCENARIOS, scenario_params
from harness.chaos.nemesis_api import ChaosEnv
from harness.errors import ConfigError
from harness.metrics.fault_timeline import FaultTimeline

LOAD_FAULTS = ("sever", "blackhole", "latency-spike", "bandwidth", "limit-data", "flap",
               "terminate-backends", "connection-exhaustion", "read-only")
ROLE_FAULTS = ("terminate-backends", "connection-exhaustion", "read-only")
_SPEC = re.compile(r"(?P<name>[a-z-]+)@(?P<start>\d+(?:\.\d+)?)s?\+(?P<dur>\d+(?:\.\d+)?)s?")


@dataclass(frozen=True)
class FaultPlan:
    name: str
    start_s: float
    duration_s: float

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.start_s:g}s+{self.duration_s:g}s"

    @property
    def needs_role(self) -> bool:
        return self.name in ROLE_FAULTS


def parse_fault(text: str, duration_s: float | None = None) -> FaultPlan:
    """`sever@20s+10s` -> FaultPlan; checks the name and that the window fits the run."""
    match = _SPEC.fullmatch((text or "").strip())
    if not match:
        raise ConfigError(f"--fault {text!r} is not NAME@STARTs+DURATIONs",
                          hint="e.g. --fault sever@20s+10s (sever 20 s into the run, for 10 s)")
    name = match["name"]
    if name not in LOAD_FAULTS:
        why = "not a chaos scenario" if name not in SCENARIOS else "not available under load"
        raise ConfigError(f"--fault {name}: {why}",
                          hint=f"choose from: {', '.join(LOAD_FAULTS)}")
    plan = FaultPlan(name, float(match["start"]), float(match["dur"]))
    if plan.duration_s <= 0:
        raise ConfigError(f"--fault {text}: the duration must be above 0 s",
                          hint="e.g. --fault sever@20s+10s")
    if duration_s is not None and plan.end_s >= duration_s:
        raise ConfigError(
            f"--fault {text} ends at {plan.end_s:g} s, not before the run ends "
            f"({duration_s:g} s): nothing would show the recovery",
            hint=f"use a longer --duration (at least {plan.end_s + 10:g}s) or an earlier fault")
    return plan


@dataclass
class FaultRun:
    """What happened: the windows (monotonic), errors, and the nemesis' clear time."""

    plan: FaultPlan
    timeline: FaultTimeline = field(default_factory=FaultTimeline)
    cleared_at: float | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)


class FaultDriver:
    """Runs one nemesis on a thread of its own (its own asyncio loop), timed from the moment
    `start(test_started_monotonic)` is called; `join()` returns the FaultRun."""

    def __init__(self, plan: FaultPlan, make_env: Callable[[FaultTimeline], ChaosEnv],
                 say: Callable[[str], None] = lambda _line: None) -> None:
        self.plan = plan
        self.run = FaultRun(plan)
        self._make_env = make_env
        self._say = say
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self, test_started: float) -> None:
        self._thread = threading.Thread(target=self._main, args=(test_started,),
                                        name="load-fault", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Clear early (the run ended or was interrupted); the thread clears in a finally."""
        self._stop.set()

    def join(self, timeout: float = 60.0) -> FaultRun:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.run

    def _main(self, test_started: float) -> None:
        try:
            asyncio.run(self._drive(test_started))
        except Exception as exc:  # reported in the section, never hidden
            self.run.error = f"{type(exc).__name__}: {exc}"

    async def _sleep_until(self, monotonic: float) -> bool:
        while not self._stop.is_set():
            left = monotonic - time.monotonic()
            if left <= 0:
                return True
            await asyncio.sleep(min(left, 0.05))
        return False

    async def _drive(self, test_started: float) -> None:
        from harness.chaos.nemesis import make_nemesis

        plan = self.plan
        base = scenario_params(plan.name, "quick")
        params = replace(base, outage_s=plan.duration_s)
        if plan.name == "flap":  # cycles of 1 s down / 1 s up filling the window
            cycles = max(1, int((plan.duration_s + 1) // 2))
            params = replace(base, outage_s=1.0, up_s=1.0, cycles=cycles)
        nemesis = make_nemesis(plan.name, params)
        env = self._make_env(self.run.timeline)
        if not await self._sleep_until(test_started + plan.start_s):
            return
        self._say(f"fault: {plan.name} injected")
        try:
            await nemesis.inject(env)
            await self._sleep_until(test_started + plan.end_s)
        finally:
            self.run.cleared_at = await nemesis.clear(env)
            self._say(f"fault: {plan.name} cleared")
        self.run.notes.extend(env.notes)


def describe_env(env: ChaosEnv) -> dict[str, Any]:
    return {"proxy": env.faults.proxy, "role": env.app_role, "deadline_s": env.deadline_s}
