"""restart-degraded: the target's process restarts while PostgreSQL is still away.

A pod rescheduled during an incident: the store shuts down gracefully with writes still in its
journal, and its successor opens the same cache_dir without a database to talk to. Course of
one repetition:
1. a child process (`controlled_child`) opens the target on the scenario's cache_dir, pairs the
   companies and runs their traffic (warmup);
2. the proxy is severed (fault window "restart-degraded"); after half the outage the child is
   told to close (it finishes its messages and closes the target, as on SIGTERM) and exits;
3. at once a new instance opens on the same cache_dir in this process, still during the
   outage: it loads the companies (from whatever it has offline) and serves them as soon as
   they are loaded;
4. the proxy is healed after the full outage; traffic goes on for the recovery period; the
   runner flushes and closes the new instance and judges the merged history of both processes.
A target that cannot load a company while PostgreSQL is away simply loads it after the heal
(its calls fail meanwhile, which is allowed); what must not happen is losing what the first
process acknowledged, or answering with older data than was acknowledged.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from harness.chaos.catalog import ScenarioParams
from harness.chaos.controlled_child import ControlledChild
from harness.chaos.crash import (
    CHILD_START_S,
    LOAD_S,
    abandon,
    load_companies,
    open_instance,
    successor_workload,
    watch_drain,
)
from harness.chaos.nemesis_api import ShapeContext, ShapeOutcome
from harness.chaos.sampler import StatusSampler, mode_of
from harness.chaos.workload import Workload
from harness.metrics.history import History

CLOSE_S = 30.0


class RestartDegradedShape:
    name = "restart-degraded"

    def __init__(self, params: ScenarioParams) -> None:
        self.params = params

    async def run(self, ctx: ShapeContext) -> ShapeOutcome:
        env, params = ctx.env, self.params
        history_path = ctx.work_dir / "first-history.jsonl"
        layout_path = ctx.work_dir / "layout.json"
        sever = env.faults.sever_as(self.name, {})
        first = await ControlledChild.launch(ctx, cache_dir=ctx.cache_dir, history=history_path,
                                             layout=layout_path, process_base=0,
                                             run_tag=f"first{ctx.seed}")
        target: Any = None
        workload: Workload | None = None
        sampler: StatusSampler | None = None
        loading: asyncio.Future[int] | None = None
        restart: dict[str, Any] = {}
        try:
            ctx.phase("setup", "the first process pairs the companies")
            await first.wait_running(CHILD_START_S)
            assert first.running_at is not None
            await asyncio.sleep(params.warmup_s)

            ctx.phase("fault", f"sever {params.outage_s:g} s; the process restarts half-way")
            window = await sever.ainject()
            heal_at = time.monotonic() + params.outage_s
            await asyncio.sleep(params.outage_s / 2)
            closed = await first.close_gracefully(CLOSE_S)
            restart["first_journal_depth_at_close"] = closed.get("journal_depth")
            restart["first_close_s"] = round(float(closed.get("close_s") or 0.0), 3)
            restart["first_exit"] = first.proc.returncode
            if closed.get("error"):
                restart["first_close_error"] = closed["error"]

            opened_at = time.monotonic()
            target = await open_instance(ctx)
            restart["open_s"] = round(time.monotonic() - opened_at, 3)
            restart["mode_at_open"] = mode_of(target)  # reported, never judged
            restart["opened_before_heal_s"] = round(heal_at - time.monotonic(), 3)
            workload = successor_workload(ctx, target, json.loads(layout_path.read_text()),
                                          f"second{ctx.seed}")
            sampler = StatusSampler(target)
            sampler.start()
            loading = asyncio.ensure_future(load_companies(workload, LOAD_S + params.outage_s))
            await asyncio.wait({loading}, timeout=max(0.0, heal_at - time.monotonic()))
            if loading.done():
                workload.start()  # served during the outage, from what it has offline
                restart["loaded_before_heal"] = True

            await asyncio.sleep(max(0.0, heal_at - time.monotonic()))
            await asyncio.shield(sever.aclear())
            cleared_at = (window.cleared_at.monotonic if window.cleared_at
                          else time.monotonic())
            ctx.phase("recover", "PostgreSQL is back; the new process replays the journal")
            drain = asyncio.ensure_future(watch_drain(target, cleared_at,
                                                      params.recovery_s + params.settle_s))
            restart["load_failures"] = await loading
            if not workload.running:
                workload.start()
                restart["loaded_before_heal"] = False
            await asyncio.sleep(params.recovery_s)
            await workload.stop()
            await sampler.stop()
            drained = await drain
            restart["journal_drained_after_heal_s"] = (None if drained is None
                                                       else round(drained, 3))

            first_history = History.read_jsonl(history_path)
            notes = [_summary(restart)]
            if restart.get("first_close_error"):
                notes.append(f"restart-degraded: the first process's close() failed: "
                             f"{restart['first_close_error']}")
            if first_history.torn_tail:
                notes.append(f"restart-degraded: first process history "
                             f"{first_history.torn_tail}")
            window.params.update(restart)
            return ShapeOutcome(
                target=target, started_at=first.running_at, cleared_at=cleared_at,
                samples=first.rows + sampler.samples,
                workload={"first": (first.closed or {}).get("stats", {}),
                          "second": workload.stats(), "restart": restart},
                history=History.merge(first_history, ctx.history), notes=notes)
        except BaseException:
            if loading is not None:
                loading.cancel()
            await abandon(target, workload, sampler)
            raise
        finally:
            await first.reap()
            if sever.active:
                await asyncio.shield(sever.aclear())


def _summary(restart: dict[str, Any]) -> str:
    depth = restart.get("first_journal_depth_at_close")
    return ("restart-degraded: the first process closed with "
            + ("no journal" if depth is None else f"{depth} journaled writes")
            + f"; its successor opened {restart.get('opened_before_heal_s')} s before the heal"
            + f" ({restart.get('mode_at_open') or 'no status'}), "
            + ("served the companies before the heal"
               if restart.get("loaded_before_heal") else "served them after the heal"))
