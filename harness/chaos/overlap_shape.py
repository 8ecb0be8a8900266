"""deploy-overlap: the old and the new process of a rolling deploy serve the same companies.

Course of one repetition (the old instance is a child process, `controlled_child`, with its own
cache_dir; the new one runs in this process on the scenario's cache_dir):
1. old alone: it pairs the companies and runs their traffic (warmup);
2. hand-over: the new instance opens, the old lets go of every other company (it finishes the
   message it is in), the new loads those and serves them: both are up, each company served
   by one of them (warmup);
3. outage (fault window "deploy-overlap"): the proxy both use is severed; each instance goes on
   with its companies, journaling, and replays after the heal;
4. both serve every company at once, healthy, for the recovery period: the same keys written
   and read by two processes (once the old reports normal mode, when it reports one);
5. the old instance closes gracefully (finishes its messages, closes the target) and exits;
   the new one goes on; the runner flushes and closes it.
The checker judges the merged history of both processes against PostgreSQL.

Why the outage splits the companies: while PostgreSQL is away, each instance can answer only
from what it holds itself, so any store that serves reads during an outage returns, for a key
the other instance has written since, the older value (a stale read the checker rightly
reports). The resilient store documents this limit (docs/resilient-store-guarantees.md);
a load balancer that pins each company to one process is how Baileys is deployed anyway (one
socket per account). With both instances on every key while healthy, a store whose cache
keeps serving a value after the other instance wrote a newer one is caught (stale-read).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from harness.chaos.catalog import ScenarioParams
from harness.chaos.controlled_child import ControlledChild, SteeredWorkload
from harness.chaos.crash import (
    CHILD_START_S,
    LOAD_S,
    abandon,
    load_companies,
    open_instance,
    successor_workload,
)
from harness.chaos.nemesis_api import ShapeContext, ShapeOutcome
from harness.chaos.sampler import StatusSampler, mode_of
from harness.metrics.history import History

COMMAND_S = 30.0  # a hand-over (companies finish their message) or a graceful close
NORMAL_WAIT_S = 30.0  # for both instances to report normal mode after the heal
NORMAL_POLL_S = 0.05


class DeployOverlapShape:
    name = "deploy-overlap"

    def __init__(self, params: ScenarioParams) -> None:
        self.params = params

    async def run(self, ctx: ShapeContext) -> ShapeOutcome:
        env, params = ctx.env, self.params
        history_path = ctx.work_dir / "old-history.jsonl"
        layout_path = ctx.work_dir / "layout.json"
        old_cache = ctx.work_dir / "cache-old"
        old_cache.mkdir(mode=0o700)
        old_half, new_half = list(ctx.companies[0::2]), list(ctx.companies[1::2])
        sever = env.faults.sever_as(self.name, {"old": len(old_half), "new": len(new_half)})
        old = await ControlledChild.launch(ctx, cache_dir=old_cache, history=history_path,
                                           layout=layout_path, process_base=0,
                                           run_tag=f"old{ctx.seed}")
        target: Any = None
        workload: SteeredWorkload | None = None
        sampler: StatusSampler | None = None
        notes: list[str] = []
        overlap: dict[str, Any] = {}
        try:
            ctx.phase("setup", "the old instance pairs the companies")
            await old.wait_running(CHILD_START_S)
            assert old.running_at is not None
            await asyncio.sleep(params.warmup_s)

            ctx.phase("hand-over", f"a new instance takes {len(new_half)} of the companies")
            target = await open_instance(ctx)
            workload = successor_workload(ctx, target, json.loads(layout_path.read_text()),
                                          f"new{ctx.seed}", SteeredWorkload)
            await old.serve(old_half, COMMAND_S)
            overlap["load_failures"] = await load_companies(workload, LOAD_S, only=new_half)
            workload.serve(new_half)
            sampler = StatusSampler(target)
            sampler.start()
            workload.start()
            await asyncio.sleep(params.warmup_s)

            ctx.phase("fault", f"sever {params.outage_s:g} s; each instance keeps its companies")
            window = await sever.ainject()
            await asyncio.sleep(params.outage_s)
            await asyncio.shield(sever.aclear())
            cleared_at = (window.cleared_at.monotonic if window.cleared_at
                          else time.monotonic())

            ctx.phase("overlap", "both instances serve every company")
            overlap["normal_after_heal_s"] = await _both_normal(old, target, cleared_at)
            overlap["load_failures"] += await load_companies(workload, LOAD_S, only=old_half)
            workload.serve(None)
            await old.serve(None, COMMAND_S)
            overlap["shared_from_s"] = round(time.monotonic() - cleared_at, 3)
            await asyncio.sleep(params.recovery_s)

            ctx.phase("close", "the old instance closes gracefully")
            closed = await old.close_gracefully(COMMAND_S)
            overlap["old_close_s"] = round(float(closed.get("close_s") or 0.0), 3)
            overlap["old_journal_depth_at_close"] = closed.get("journal_depth")
            overlap["old_exit"] = old.proc.returncode
            if closed.get("error"):
                notes.append(f"deploy-overlap: the old instance's close() failed: "
                             f"{closed['error']}")
            await asyncio.sleep(min(1.0, params.recovery_s))
            await workload.stop()
            await sampler.stop()

            old_history = History.read_jsonl(history_path)
            if old_history.torn_tail:
                notes.append(f"deploy-overlap: old instance's history {old_history.torn_tail}")
            window.params.update(overlap)
            notes.append(_summary(overlap))
            # Status samples of the new instance only: the two stores' breakers are separate
            # and merging their samples would make one flapping series (the RTO reads it).
            return ShapeOutcome(
                target=target, started_at=old.running_at, cleared_at=cleared_at,
                samples=sampler.samples,
                workload={"old": (old.closed or {}).get("stats") or old.last.get("stats", {}),
                          "new": workload.stats(), "overlap": overlap},
                history=History.merge(old_history, ctx.history), notes=notes)
        except BaseException:
            await abandon(target, workload, sampler)
            raise
        finally:
            await old.reap()
            if sever.active:
                await asyncio.shield(sever.aclear())


async def _both_normal(old: ControlledChild, new: Any, since: float) -> float | None:
    """Seconds from `since` until both instances report normal mode (None when a target has
    no status(), or not within NORMAL_WAIT_S: the overlap then starts anyway). Only times the
    phase; the verdict is the checker's."""
    give_up = time.monotonic() + NORMAL_WAIT_S
    while time.monotonic() < give_up:
        new_mode, old_mode = mode_of(new), old.last.get("mode")
        if new_mode is None or old_mode is None:
            return None
        if new_mode == "normal" and old_mode == "normal":
            return round(time.monotonic() - since, 3)
        await asyncio.sleep(NORMAL_POLL_S)
    return None


def _summary(overlap: dict[str, Any]) -> str:
    normal = overlap.get("normal_after_heal_s")
    return ("deploy-overlap: both instances served every company from "
            f"{overlap.get('shared_from_s')} s after the heal"
            + ("" if normal is None else f" (both normal after {normal:.2f} s)")
            + f"; the old one closed in {overlap.get('old_close_s')} s with journal depth "
            f"{overlap.get('old_journal_depth_at_close')}")
