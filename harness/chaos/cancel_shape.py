"""cancel: the application cancels a share of its calls while they are in flight.

Applications bound their calls (`asyncio.timeout`) and shut task groups down: the store's call
is then cancelled at whatever point it has reached (before anything was sent, with a statement
on the wire, while the journal syncs, during a replay). Course of one repetition, in this
process:
1. the target is opened and the companies set up (nothing cancelled yet);
2. steady traffic through `CancellingDriver`, which runs a share (`SHARE`) of the calls under
   a timeout drawn at random, log-uniform between `CANCEL_AFTER_S` bounds, so most land
   inside the call; warmup;
3. the proxy is severed for the outage (fault window "cancel"), then healed; cancellations go
   on during the replay (from the heal until the target reports an empty journal; targets
   without `status()` have none) and stop once it is over, so that the recovery time is
   measured as for the other scenarios (a write cancelled after it was sent may rightly make
   the store fence and reopen its breaker: with cancellations going on for ever it would never
   stay closed); traffic goes on for the recovery period.
Cancellations are counted per phase: before the outage, during it, during the replay. The
course is otherwise the steady one, so the checker's verdicts mean the same.

A cancelled write is recorded `info` (indeterminate: it may have happened, or may still); a
cancelled read `fail`. The company goes on as a new Jepsen process, as after any `info`. For a
Node.js target the Python side stops waiting and the call's promise is never awaited again (an
abandoned call): the same fault, as the store sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from harness.chaos.catalog import ScenarioParams
from harness.chaos.crash import watch_drain
from harness.chaos.nemesis_api import ShapeContext, ShapeOutcome
from harness.chaos.sampler import StatusSampler
from harness.chaos.workload import Workload, WorkloadConfig
from harness.metrics.history import History
from harness.target_driver import Driver

SHARE = 0.2  # of all calls, in every phase
CANCEL_AFTER_S = (50e-6, 0.2)  # log-uniform: the first await of a call ... a slow replay
OPEN_S = 60.0
PHASES = ("before", "outage", "replay")


class CancelledByCaller(Exception):
    """The workload gave up on the call (its own asyncio.timeout), as an application does."""

    def __init__(self, after_s: float) -> None:
        super().__init__(f"cancelled by the caller after {after_s * 1000:.3f} ms")


class CancellingDriver(Driver):
    """A Driver that cancels a share of the calls at a random point; see the module
    docstring. `share` is 0 until the shape turns it on (setup is never cancelled)."""

    def __init__(self, target: Any, history: History, *, seed: int,
                 phase: Callable[[], str], share: float = 0.0, **kwargs: Any) -> None:
        super().__init__(target, history, **kwargs)
        self.share = share
        self._rng = random.Random(f"cancel/{seed}")
        self._phase = phase
        self.cancelled: Counter[str] = Counter()

    async def _bounded(self, call: Any) -> Any:
        if self.share <= 0 or self._phase() not in PHASES or self._rng.random() >= self.share:
            return await super()._bounded(call)
        low, high = CANCEL_AFTER_S
        after = math.exp(self._rng.uniform(math.log(low), math.log(high)))
        scope = asyncio.timeout(after)
        try:
            async with scope:
                return await super()._bounded(call)
        except TimeoutError:
            if not scope.expired():
                raise  # the target's own timeout, or the driver's: not ours
            self.cancelled[self._phase()] += 1
            raise CancelledByCaller(after) from None

    def report(self) -> dict[str, Any]:
        return {"share": SHARE, "after_s": list(CANCEL_AFTER_S),
                "cancelled": {p: self.cancelled.get(p, 0) for p in PHASES},
                "total": sum(self.cancelled.values())}


class CancelShape:
    name = "cancel"

    def __init__(self, params: ScenarioParams) -> None:
        self.params = params

    async def run(self, ctx: ShapeContext) -> ShapeOutcome:
        env, params = ctx.env, self.params
        phase = ["before"]
        sever = env.faults.sever_as(self.name, {"share": SHARE})
        target = await asyncio.wait_for(
            ctx.target_spec.open(env.proxy_dsn, cache_dir=ctx.cache_dir), OPEN_S)
        workload: Workload | None = None
        sampler = StatusSampler(target)
        try:
            driver = CancellingDriver(target, ctx.history, seed=ctx.seed,
                                      phase=lambda: phase[0])
            workload = Workload(target, ctx.companies, ctx.history,
                                config=WorkloadConfig(seed=ctx.seed), run_tag=f"x{ctx.seed}",
                                driver=driver)
            ctx.phase("setup", "pairing the companies (no cancellation yet)")
            await workload.setup()
            driver.share = SHARE
            sampler.start()
            workload.start()
            await asyncio.sleep(params.warmup_s)

            ctx.phase("fault", f"sever {params.outage_s:g} s; {SHARE:.0%} of calls cancelled")
            window = await sever.ainject()
            phase[0] = "outage"
            await asyncio.sleep(params.outage_s)
            await asyncio.shield(sever.aclear())
            phase[0] = "replay"
            cleared_at = (window.cleared_at.monotonic if window.cleared_at
                          else time.monotonic())

            ctx.phase("recover", f"{params.recovery_s:g} s, cancellations go on")
            drained = asyncio.ensure_future(watch_drain(target, cleared_at, params.recovery_s))
            drained.add_done_callback(lambda _: phase.__setitem__(0, "after"))
            await asyncio.sleep(params.recovery_s)
            await workload.stop()
            drained_s = await drained
            phase[0] = "after"
            await sampler.stop()
            report = driver.report()
            report["journal_drained_after_heal_s"] = (None if drained_s is None
                                                      else round(drained_s, 3))
            window.params.update(cancelled=report["cancelled"])
            notes = [_summary(report)]
            missing = [p for p in ("before", "outage") if not report["cancelled"][p]]
            if missing:
                notes.append(f"cancel: no call was cancelled {' or '.join(missing)} the outage")
            return ShapeOutcome(
                target=target, started_at=workload.started_at or time.monotonic(),
                cleared_at=cleared_at, samples=sampler.samples,
                workload={**workload.stats(), "cancel": report}, notes=notes)
        except BaseException:
            if workload is not None:
                await workload.stop(grace_s=1.0)
            await sampler.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(target.close(), 30)
            raise
        finally:
            if sever.active:
                await asyncio.shield(sever.aclear())


def _summary(report: dict[str, Any]) -> str:
    by_phase = ", ".join(f"{n} {p}" for p, n in report["cancelled"].items())
    return f"cancel: {report['total']} calls cancelled in flight ({by_phase})"
