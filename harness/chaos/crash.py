"""client-crash: kill -9 the process running the store while its journal holds writes; a new
process on the same cache_dir must replay them.

Course of one repetition (a `ScenarioShape`, see harness/chaos/nemesis_api.py):
1. A child process (`python -m harness.chaos.child`) opens the target from its spec string on
   the proxied DSN and the scenario's cache_dir, pairs the companies, and runs the workload,
   recording every operation to a history file flushed line by line.
2. Warmup; then the proxy is severed (one "client-crash" window opens). After the outage hold,
   and once the child reports a non-empty journal (targets with `status()`; others are killed
   at the end of the hold), the child gets SIGKILL.
3. Heal (the window closes: the RTO clock starts). This process opens a NEW instance of the
   target on the same cache_dir, which must replay the dead process's journal; the time from
   the heal until its journal is drained is measured. The companies carry on (same contacts,
   groups and keys, new values) for the recovery period.
4. The child's history (its last line may be torn; ops it never completed count as
   indeterminate) and ours are merged for the checker; the runner flushes and closes the new
   instance, reads PostgreSQL directly and checks.
A target without a journal (the reference store) runs the same course: its writes failed
during the outage were never acknowledged, so nothing may be lost.

With Signal conversations (`ctx.signal`: the quick, ci, predeploy and thorough chaos profiles;
not smoke) they live in the child too and die with it: the successor receives what the server
stand-in still held and continues every conversation during the recovery period, then the
runner's new pod continues them again (harness/chaos/crash_signal.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Collection
from typing import Any, TypeVar

from harness.chaos.catalog import ScenarioParams
from harness.chaos.child_process import ChildProcess, CrashScenarioError
from harness.chaos.crash_signal import CrashSignal
from harness.chaos.nemesis_api import ShapeContext, ShapeOutcome
from harness.chaos.sampler import StatusSampler
from harness.chaos.workload import Contact, Group, Workload, WorkloadConfig
from harness.faults.helpers import Faults
from harness.metrics.fault_timeline import FaultTimeline, Instant
from harness.metrics.history import History

log = logging.getLogger("harness.chaos")

PARENT_PROCESS_BASE = 1_000_000  # Jepsen process ids of the successor: never the child's
PRE_KEY_ID_OFFSET = 100_000  # the successor's new pre-key ids start above the child's
CHILD_START_S = 180.0  # open + setup of every company in the child
JOURNAL_WAIT_S = 15.0  # after the hold, for the child's journal to hold something
OPEN_S = 60.0
LOAD_S = 30.0  # the successor's first load() of every company
DRAIN_POLL_S = 0.01


W = TypeVar("W", bound=Workload)


async def open_instance(ctx: ShapeContext) -> Any:
    """A new instance of the target on the scenario's cache_dir, through the fault proxy."""
    return await asyncio.wait_for(
        ctx.target_spec.open(ctx.env.proxy_dsn, cache_dir=ctx.cache_dir), OPEN_S)


def successor_workload(ctx: ShapeContext, target: Any, layout: dict[str, Any], run_tag: str,
                       kind: type[W] = Workload) -> W:  # type: ignore[assignment]
    """The companies of a process that went away, carried on by `target`: same contacts,
    groups and pre-key ids, new values, recorded to the runner's history (which its observer
    follows already) under process ids the first process never used."""
    workload = kind(target, ctx.companies, ctx.history, config=WorkloadConfig(seed=ctx.seed + 1),
                    run_tag=run_tag, process_base=PARENT_PROCESS_BASE)
    restore_layout(workload, layout)
    return workload


async def abandon(target: Any, workload: Workload | None = None,
                  sampler: StatusSampler | None = None) -> None:
    """On the way out of a course that failed: stop the workload and the sampler, close the
    target (best effort: the original error is the one to report)."""
    if workload is not None:
        await workload.stop(grace_s=1.0)
    if sampler is not None:
        await sampler.stop()
    if target is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(target.close(), 30)


def restore_layout(workload: Workload, layout: dict[str, Any]) -> None:
    """Give the successor's companies the child's contacts, groups and pre-key ids."""
    by_id = {c["id"]: c for c in layout["companies"]}
    for company in workload.companies:
        saved = by_id[company.id]
        company.phone = saved["phone"]
        company.contacts = [Contact(user, list(devices)) for user, devices in saved["contacts"]]
        users = {c.user: c for c in company.contacts}
        company.groups = [Group(jid, [users[u] for u in members])
                          for jid, members in saved["groups"]]
        company.pre_key_ids = list(saved["pre_key_ids"])
        company.next_pre_key_id = int(saved["next_pre_key_id"]) + PRE_KEY_ID_OFFSET


async def load_companies(workload: Workload, within_s: float,
                         only: Collection[str] | None = None) -> int:
    """Every company's state (or those in `only`) through the target (recorded reads),
    retried until it answers. Returns how many loads failed before succeeding."""
    give_up = time.monotonic() + within_s
    failures = 0

    async def one(company: Any) -> None:
        nonlocal failures
        while True:
            outcome, state = await workload.driver.load(company.process, company.id)
            if outcome == "ok":
                company.state = state
                return
            failures += 1
            if time.monotonic() > give_up:
                raise CrashScenarioError(
                    f"the new instance of the target could not load company {company.id} "
                    f"within {within_s:g} s after the heal",
                    hint="the target does not come back after a restart of its process")
            await asyncio.sleep(0.05)

    gate = asyncio.Semaphore(16)

    async def gated(company: Any) -> None:
        async with gate:
            await one(company)

    await asyncio.gather(*(gated(c) for c in workload.companies
                           if only is None or c.id in only))
    return failures


async def watch_drain(target: Any, since: float, within_s: float) -> float | None:
    """Seconds from `since` until the target's journal is empty (None: no journal to watch,
    or not drained within `within_s`)."""
    status = getattr(target, "status", None)
    if not callable(status):
        return None
    give_up = time.monotonic() + within_s
    while time.monotonic() < give_up:
        with contextlib.suppress(Exception):
            if status()["journal"]["depth"] == 0:
                return time.monotonic() - since
        await asyncio.sleep(DRAIN_POLL_S)
    return None


def crash_figures(depth_at_kill: int | None, opened_s: float, drained_s: float | None,
                  load_failures: int | None, child_history: History,
                  signal: CrashSignal | None = None) -> dict[str, Any]:
    """What a kill -9 left and how its successor came back: the scenario's `crash` figures
    (with `signal` when conversations ran in the child)."""
    ops = child_history.ops()
    figures: dict[str, Any] = {
        "journal_depth_at_kill": depth_at_kill, "open_after_heal_s": round(opened_s, 3),
        "journal_drained_after_heal_s": None if drained_s is None else round(drained_s, 3),
        "load_failures": load_failures, "child_ops": len(ops),
        "child_pending_ops": sum(1 for op in ops if op.outcome is None)}
    if signal is not None:
        figures["signal"] = signal.figures()
    return figures


class CrashShape:
    name = "client-crash"

    def __init__(self, params: ScenarioParams) -> None:
        self.params = params

    async def run(self, ctx: ShapeContext) -> ShapeOutcome:
        env, params = ctx.env, self.params
        history_path = ctx.work_dir / "child-history.jsonl"
        layout_path = ctx.work_dir / "layout.json"
        notes: list[str] = []
        faults = Faults(env.faults.client, env.faults.proxy, FaultTimeline())
        sever = faults.sever()
        window = None
        target = None
        signal = (None if ctx.signal is None else
                  CrashSignal(ctx.signal, ctx.work_dir, ctx.history, run_tag=f"k{ctx.seed}",
                              observer=ctx.observer))
        child = await ChildProcess.start(ctx, history_path, layout_path,
                                         extra=signal.child_args() if signal else ())
        if signal is not None and ctx.target_spec.in_process:  # while the child sets up
            signal.prepare()
        try:
            ctx.phase("setup", "child process opens the target and pairs the companies"
                      + (" (and its Signal conversations)" if signal else ""))
            await child.wait_running(CHILD_START_S)
            assert child.running_at is not None
            if signal is not None and not signal.running(child):
                notes += signal.notes
                await signal.abandon()
                signal = None
            await asyncio.sleep(params.warmup_s)

            ctx.phase("fault", f"sever {params.outage_s:g} s, then kill -9 the child")
            started = Instant.now()
            await sever.ainject()
            window = env.timeline.open(self.name, env.faults.proxy, {}, at=started)
            await asyncio.sleep(params.outage_s)
            has_journal = child.journal_depth is not None
            if has_journal:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(child.journal_filled.wait(), JOURNAL_WAIT_S)
            depth_at_kill = child.journal_depth
            child.kill()
            killed_at = time.monotonic()
            if ctx.observer is not None:  # what PostgreSQL held at the kill
                await ctx.observer.round()
            await child.reap()
            if has_journal and not depth_at_kill:
                notes.append(f"client-crash: the child's journal was still empty "
                             f"{JOURNAL_WAIT_S:g} s after the hold; killed anyway")

            await asyncio.shield(sever.aclear())
            env.timeline.close(window)
            cleared_at = window.cleared_at.monotonic if window.cleared_at else time.monotonic()
            window.params.update(child_pid=child.proc.pid, journal_depth_at_kill=depth_at_kill,
                                 killed_after_s=round(killed_at - started.monotonic, 3),
                                 killed_at_ns=round(killed_at * 1e9))

            child_history = History.read_jsonl(history_path)
            if child_history.torn_tail:
                notes.append(f"client-crash: child history {child_history.torn_tail}")
            if signal is not None:
                signal.killed(at_ns=round(killed_at * 1e9), child_history=child_history)
            layout = json.loads(layout_path.read_text())

            ctx.phase("recover", "a new instance on the same cache_dir replays the journal")
            target = await open_instance(ctx)
            opened_s = time.monotonic() - cleared_at
            drain = asyncio.ensure_future(watch_drain(target, cleared_at, params.settle_s +
                                                      params.recovery_s))
            workload = successor_workload(ctx, target, layout, f"p{ctx.seed}")
            load_failures = await load_companies(workload, LOAD_S)
            sampler = StatusSampler(target)
            sampler.start()
            workload.start()
            if signal is not None:  # the conversations the killed child held go on
                signal.carry_on(target)
            try:
                await asyncio.sleep(params.recovery_s)
            finally:
                await workload.stop()
                await sampler.stop()
            if signal is not None:
                await signal.finish()
                notes += signal.notes
            drained_s = await drain

            crash = crash_figures(depth_at_kill, opened_s, drained_s, load_failures, child_history,
                                  signal)
            window.params.update(crash)
            notes.append(_summary(crash))
            return ShapeOutcome(
                target=target, started_at=child.running_at, cleared_at=cleared_at,
                samples=child.rows + sampler.samples,
                workload={"child": child.last.get("stats", {}), "successor": workload.stats(),
                          "crash": crash},
                history=History.merge(child_history, ctx.history), notes=notes, signal=signal)
        except BaseException:
            await abandon(target)
            raise
        finally:
            await child.reap()
            if signal is not None:
                await signal.abandon()
            if sever.active:
                await asyncio.shield(sever.aclear())
            if window is not None and window.cleared_at is None:
                env.timeline.close(window)


def _summary(crash: dict[str, Any]) -> str:
    depth = crash["journal_depth_at_kill"]
    drained = crash["journal_drained_after_heal_s"]
    return ("client-crash: killed with "
            + ("no journal" if depth is None else f"{depth} journaled writes")
            + f"; the new instance opened {crash['open_after_heal_s']:.2f} s after the heal"
            + ("" if drained is None else f", its journal drained {drained:.2f} s after it"))


def make_shape(params: ScenarioParams) -> CrashShape:
    return CrashShape(params)
