"""Disk faults (layer `disk`): the target's cache_dir on a filesystem that loses what was not
synced, fills up, fails or slows down; then the power goes.

Course of one repetition (a `ScenarioShape`, like client-crash in harness/chaos/crash.py):
1. The scenario's cache_dir is mounted on the fault-injecting FUSE filesystem
   (harness/faults/disk). A child process opens the target there, pairs the companies and runs
   the workload; warmup.
2. The proxy is severed (one window of kind <scenario> opens): PostgreSQL is away and a store
   that journals writes to its disk. The scenario's disk fault plays out inside the outage:
   - power-loss*: none;
   - disk-full: at 25 %, 33 % and 41 % a transient ENOSPC (the next write is cut short, one
     more is refused after 0.1 s, then space is back: another process freed some; a writer
     that goes on after the refusal gets its next write through; three of them so that one
     likely hits the journal rather than another file), at 50 % the disk is full until 80 %;
   - disk-error: at 25 % one write fails with EIO;
   - disk-error-fsync: at 25 % one fsync fails with EIO after 0.1 s (its dirty pages are
     dropped: fsyncgate; writes queued behind it meanwhile are the ones a careless journal
     acknowledges next); fsyncs are back to normal at 60 %;
   - slow-disk: every fsync takes 1 s from the start of the outage until the power loss.
3. The power loss: fsyncs are held (so whatever is written from now on is certainly unsynced),
   and once the target is caught mid-write (one of its fsyncs waits, or it wrote more without
   syncing) the child's whole process tree gets SIGKILL;
   when the filesystem is idle it forgets every unsynced byte and every create / rename /
   unlink no directory fsync followed (power-loss-torn: the last write is torn, a prefix of it
   kept; power-loss-reorder: a random subset of its sectors kept, never a prefix).
4. Heal. This process opens a new instance of the target on the same cache_dir (still on the
   filesystem), which must replay what survived; the companies carry on for the recovery
   period, and past it until the replay is done (at most the settle time) plus 1.5 s: a
   restart on a busy machine can outlast the recovery period, and the RTO is then measured
   rather than cut off (it is reported, not gated: it includes the process's start). The
   runner then flushes, reads PostgreSQL directly and checks the merged history: an
   acknowledged write that did not survive the power loss is `lost`.
A new instance that cannot open (e.g. a journal it now calls corrupt) is the target's failure,
recorded in the section (`disk.successor_error`); whatever it did not replay shows as lost.

The section gets `disk` (see harness/chaos/disk_report.py): what the power loss dropped, the
faults injected and where they hit, the filesystem's counters, and whether the scenario's
precondition was met (a power loss that dropped nothing proves nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import psutil

from harness.chaos.catalog import ScenarioParams
from harness.chaos.child_process import ChildProcess, CrashScenarioError
from harness.chaos.crash import (
    CHILD_START_S,
    JOURNAL_WAIT_S,
    crash_figures,
    load_companies,
    open_instance,
    successor_workload,
    watch_drain,
)
from harness.chaos.nemesis_api import NemesisUnavailable, ShapeContext, ShapeOutcome
from harness.chaos.sampler import StatusSampler
from harness.faults.disk import DiskUnavailable, FaultyDisk, unavailable
from harness.faults.helpers import Faults
from harness.metrics.fault_timeline import FaultTimeline, Instant
from harness.metrics.history import History
from harness.metrics.windows import NS

log = logging.getLogger("harness.chaos")

LOAD_S = 30.0
UNSYNCED_WAIT_S = 5.0  # after holding fsyncs, for the target to write something unsynced
IDLE_WAIT_S = 5.0  # after the kill, for the requests the dead processes sent to finish
ENOSPC_AFTER_BYTES = 256  # the transient ENOSPC cuts the next write after this many bytes
SLOW_FSYNC_S = 1.0
AFTER_DRAIN_S = 1.5  # traffic after a late drain: each company writes again (4 messages/s)
FAULT_DELAY_S = 0.1  # a failing ENOSPC / fsync takes this long: later writes queue behind it


@dataclass(frozen=True)
class DiskPlan:
    """What a disk scenario does: its fault inside the outage, then how the power goes."""

    fault: str | None  # None | "enospc" | "eio-write" | "eio-fsync" | "slow"
    power_loss: str  # LazyDisk.power_loss mode: clear | torn-op | torn-seq
    precondition: str  # what must have happened for a pass to mean something


PLANS: dict[str, DiskPlan] = {
    "power-loss": DiskPlan(None, "clear", "the power loss caught the target mid-write and "
                           "dropped its unsynced bytes"),
    "power-loss-torn": DiskPlan(None, "torn-op",
                                "the power loss tore an unsynced write (a prefix of it kept)"),
    "power-loss-reorder": DiskPlan(None, "torn-seq",
                                   "the power loss kept a later sector of an unsynced write "
                                   "and lost an earlier one"),
    "disk-full": DiskPlan("enospc", "clear",
                          "a write was cut short by ENOSPC and later writes were refused"),
    "disk-error": DiskPlan("eio-write", "clear", "a write of the target failed with EIO"),
    "disk-error-fsync": DiskPlan("eio-fsync", "clear",
                                 "an fsync of the target failed with EIO (pages dropped)"),
    "slow-disk": DiskPlan("slow", "clear", f"fsyncs were delayed by {SLOW_FSYNC_S:g} s"),
}


class _MountedTarget:
    """The successor target, closed before its filesystem is unmounted."""

    def __init__(self, target: Any, disk: FaultyDisk) -> None:
        self._target = target
        self._disk = disk

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)

    async def close(self) -> None:
        try:
            await self._target.close()
        finally:
            await self._disk.astop()


def kill_tree(pid: int) -> list[psutil.Process]:
    """SIGKILL a process and every descendant (a Node sidecar runs in its own session, so a
    process-group kill would miss it): the whole client loses power at once."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    return procs


class DiskShape:
    def __init__(self, name: str, params: ScenarioParams) -> None:
        self.name = name
        self.params = params
        self.plan = PLANS[name]

    async def run(self, ctx: ShapeContext) -> ShapeOutcome:
        missing = unavailable()
        if missing is not None:
            raise NemesisUnavailable(f"{self.name} needs a FUSE filesystem: {missing.reason}",
                                     hint=missing.hint)
        backing = ctx.work_dir / "disk-backing"
        backing.mkdir(mode=0o700)
        try:
            disk = await asyncio.to_thread(FaultyDisk.start, ctx.cache_dir, backing,
                                           log_path=ctx.work_dir / "disk.log")
        except DiskUnavailable as exc:
            raise NemesisUnavailable(f"{self.name} needs a FUSE filesystem: {exc.message}",
                                     hint=exc.hint) from None
        keep_mounted = False
        try:
            outcome = await self._run(ctx, disk)
            keep_mounted = outcome.target is not None
            if keep_mounted:
                outcome.target = _MountedTarget(outcome.target, disk)
            return outcome
        finally:
            if not keep_mounted:
                await disk.astop()

    async def _run(self, ctx: ShapeContext, disk: FaultyDisk) -> ShapeOutcome:
        env, params, plan = ctx.env, self.params, self.plan
        history_path = ctx.work_dir / "child-history.jsonl"
        layout_path = ctx.work_dir / "layout.json"
        notes: list[str] = []
        injected: list[dict[str, Any]] = []
        faults = Faults(env.faults.client, env.faults.proxy, FaultTimeline())
        sever = faults.sever()
        window = None
        target = None
        child = await ChildProcess.start(ctx, history_path, layout_path)
        try:
            ctx.phase("setup", "child process opens the target on the FUSE cache_dir")
            await child.wait_running(CHILD_START_S)
            assert child.running_at is not None
            await asyncio.sleep(params.warmup_s)

            ctx.phase("fault", f"sever {params.outage_s:g} s with {self.name}, then power loss")
            started = Instant.now()
            await sever.ainject()
            window = env.timeline.open(self.name, env.faults.proxy, {}, at=started)
            await self._disk_fault(disk, started.monotonic, injected)
            has_journal = child.journal_depth is not None
            if has_journal:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(child.journal_filled.wait(), JOURNAL_WAIT_S)
            depth_at_kill = child.journal_depth

            power = await self._power_loss(ctx, disk, child, started.monotonic, injected)
            killed_at = float(power.pop("killed_at"))
            await asyncio.shield(sever.aclear())
            env.timeline.close(window)
            cleared_at = window.cleared_at.monotonic if window.cleared_at else time.monotonic()
            window.params.update(child_pid=child.proc.pid, journal_depth_at_kill=depth_at_kill,
                                 killed_after_s=round(killed_at - started.monotonic, 3),
                                 killed_at_ns=round(killed_at * 1e9),
                                 bytes_dropped=power["bytes_dropped"])

            child_history = History.read_jsonl(history_path)
            if child_history.torn_tail:
                notes.append(f"{self.name}: child history {child_history.torn_tail}")
            layout = json.loads(layout_path.read_text())

            ctx.phase("recover", "a new instance on the same cache_dir replays what survived")
            successor_error: str | None = None
            try:
                target = await open_instance(ctx)
            except Exception as exc:  # the target's own failure: a verdict, not ours
                successor_error = f"{type(exc).__name__}: {exc}"
                notes.append(f"{self.name}: the new instance of the target could not open "
                             f"cache_dir after the power loss: {successor_error}")
            history = ctx.history  # the runner's: its observer follows it already
            workload_stats: dict[str, Any] = {}
            samples: list[dict[str, Any]] = []
            drained_s = load_failures = None
            opened_s = time.monotonic() - cleared_at
            if target is not None:
                drained_s, load_failures, successor_error = await self._successor(
                    ctx, target, cleared_at, layout, samples, workload_stats, notes)
            status = await disk.acall("status")
            report = {
                "plan": {"fault": plan.fault, "power_loss": plan.power_loss},
                "faults_injected": injected,
                "power_loss": power,
                "counters": status["counters"],
                "precondition": self._precondition(power, status["counters"]),
                "successor_error": successor_error,
                "deadline": (_deadline_check(child_history, env.deadline_s, started.monotonic,
                                             killed_at) if plan.fault == "slow" else None),
            }
            crash = crash_figures(depth_at_kill, opened_s, drained_s, load_failures, child_history)
            window.params.update(crash, disk_precondition=report["precondition"])
            notes.append(_summary(self.name, power, report["precondition"]))
            return ShapeOutcome(
                target=target, started_at=child.running_at, cleared_at=cleared_at,
                samples=child.rows + samples,
                workload={"child": child.last.get("stats", {}), "successor": workload_stats,
                          "crash": crash, "disk": report},
                history=History.merge(child_history, history), notes=notes)
        except BaseException:
            if target is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(target.close(), 30)
            raise
        finally:
            kill_tree(child.proc.pid)
            with contextlib.suppress(Exception):  # a held fsync would keep it from dying
                await disk.acall("release-fsync")
            await child.reap()
            if sever.active:
                await asyncio.shield(sever.aclear())
            if window is not None and window.cleared_at is None:
                env.timeline.close(window)

    async def _disk_fault(self, disk: FaultyDisk, t0: float,
                          injected: list[dict[str, Any]]) -> None:
        """The scenario's own fault, inside the outage; returns when the outage hold is over
        (slow-disk: its delay stays on until the power loss)."""
        outage = self.params.outage_s
        steps: list[tuple[float, str, dict[str, Any]]] = {
            None: [],
            "enospc": [*((share, "enospc", {"after_bytes": ENOSPC_AFTER_BYTES, "refusals": 1,
                                            "delay_s": FAULT_DELAY_S})
                         for share in (0.25, 0.33, 0.41)),
                       (0.5, "enospc", {"after_bytes": 0}), (0.8, "clear-faults", {})],
            "eio-write": [(0.25, "eio", {"on": "write", "count": 1}),
                          (0.8, "clear-faults", {})],
            "eio-fsync": [(0.25, "fsync-delay", {"seconds": FAULT_DELAY_S}),
                          (0.25, "eio", {"on": "fsync", "count": 1}),
                          (0.6, "clear-faults", {})],
            "slow": [(0.0, "fsync-delay", {"seconds": SLOW_FSYNC_S})],
        }[self.plan.fault]
        for share, cmd, args in steps:
            await asyncio.sleep(max(0.0, t0 + share * outage - time.monotonic()))
            await disk.acall(cmd, **args)
            injected.append({"at_s": round(time.monotonic() - t0, 3), "command": cmd, **args})
        await asyncio.sleep(max(0.0, t0 + outage - time.monotonic()))

    async def _power_loss(self, ctx: ShapeContext, disk: FaultyDisk, child: ChildProcess,
                          t0: float, injected: list[dict[str, Any]]) -> dict[str, Any]:
        """Hold fsyncs, wait for unsynced bytes, kill the child's tree, forget, release.

        The order matters: a process killed while its fsync is held cannot die before that
        fsync is answered (FUSE waits for a request the filesystem already took), so the power
        goes while it is held, and the held fsync then fails (it never synced anything)."""
        await disk.acall("hold-fsync")
        injected.append({"at_s": round(time.monotonic() - t0, 3), "command": "hold-fsync"})
        in_flight = await self._wait_in_flight(disk)
        procs = kill_tree(child.proc.pid)
        killed_at = time.monotonic()
        if ctx.observer is not None:  # what PostgreSQL held at the kill
            await ctx.observer.round()
        if not await asyncio.to_thread(disk.wait_idle, 0.05, IDLE_WAIT_S):
            log.warning("chaos %s: the filesystem was still busy %g s after the kill",
                        self.name, IDLE_WAIT_S)
        power = await disk.acall("power-loss", mode=self.plan.power_loss, seed=ctx.seed)
        power["in_flight"] = in_flight
        await disk.acall("clear-faults")  # releases the held fsyncs: they fail
        injected.append({"at_s": round(time.monotonic() - t0, 3), "command": "power-loss",
                         "mode": self.plan.power_loss})
        await child.reap()
        await asyncio.to_thread(psutil.wait_procs, procs, 10)
        power["killed_at"] = killed_at
        return power

    @staticmethod
    async def _wait_in_flight(disk: FaultyDisk) -> dict[str, Any]:
        """Wait (bounded) until the target is caught mid-write: one of its fsyncs is held (the
        bytes it was about to make durable are not), or it wrote more since the hold (a store
        that never syncs). Bytes left unsynced long before (a lock file's pid) do not count."""
        first = await disk.acall("status")
        give_up = time.monotonic() + UNSYNCED_WAIT_S
        while True:
            status = await disk.acall("status")
            grown = status["unsynced_bytes"] - first["unsynced_bytes"]
            caught = status["fsyncs_waiting"] > 0 or grown > 0
            if caught or time.monotonic() >= give_up:
                return {"caught": caught, "fsyncs_held": status["fsyncs_waiting"],
                        "unsynced_growth": grown, "unsynced_bytes": status["unsynced_bytes"]}
            await asyncio.sleep(0.01)

    async def _successor(self, ctx: ShapeContext, target: Any, cleared_at: float,
                         layout: dict[str, Any], samples: list[dict[str, Any]],
                         stats: dict[str, Any],
                         notes: list[str]) -> tuple[float | None, int | None, str | None]:
        params = self.params
        drain = asyncio.ensure_future(watch_drain(target, cleared_at,
                                                  params.settle_s + params.recovery_s))
        workload = successor_workload(ctx, target, layout, f"p{ctx.seed}")
        try:
            load_failures = await load_companies(workload, LOAD_S)
        except CrashScenarioError as exc:
            drain.cancel()
            notes.append(f"{self.name}: {exc.message}")
            stats.update(workload.stats())
            return None, None, exc.message
        sampler = StatusSampler(target)
        sampler.start()
        workload.start()
        try:
            await asyncio.sleep(params.recovery_s)
            if not drain.done():  # a slow restart: let the replay finish, then every company
                with contextlib.suppress(TimeoutError):  # writes again (its RTO is measured)
                    await asyncio.wait_for(asyncio.shield(drain), params.settle_s)
                await asyncio.sleep(AFTER_DRAIN_S)
        finally:
            await workload.stop()
            await sampler.stop()
        samples += sampler.samples
        stats.update(workload.stats())
        return await drain, load_failures, None

    def _precondition(self, power: dict[str, Any], counters: dict[str, Any]) -> dict[str, Any]:
        fault = self.plan.fault
        torn = power.get("torn") or {}
        if self.plan.power_loss == "torn-op":
            met = torn.get("torn_write_kept_bytes", 0) > 0
        elif self.plan.power_loss == "torn-seq":
            met = bool(torn.get("reordered")) and torn.get("pieces_kept", 0) > 0
        elif fault == "enospc":
            met = counters["short_writes"] > 0 and counters["enospc_errors"] > 0
        elif fault == "eio-write":
            met = counters["eio_write_errors"] > 0
        elif fault == "eio-fsync":
            met = counters["eio_fsync_errors"] > 0
        elif fault == "slow":
            met = counters["fsyncs_delayed"] > 0
        else:
            met = power["bytes_dropped"] > 0 and power.get("in_flight", {}).get("caught", False)
        detail = (f"dropped {power['bytes_dropped']} unsynced bytes in "
                  f"{power['files_affected']} files, {len(power['names_undone'])} namespace "
                  f"changes undone; faults hit: {counters['failed_paths'][:5] or 'none'}")
        return {"name": self.plan.precondition, "met": met, "detail": detail}


def _deadline_check(history: History, deadline_s: float, start: float,
                    killed_at: float) -> dict[str, Any]:
    """Calls of the killed process invoked while fsyncs were slow: how many waited past the
    deadline (completed later than it, or still waiting at the kill after longer than it)."""
    start_ns, killed_ns = round(start * NS), round(killed_at * NS)
    bound_ns = round(deadline_s * NS)
    waits: list[int] = []
    past = 0
    for op in history.ops():
        if op.invoke_ns < start_ns or op.invoke_ns > killed_ns:
            continue
        end = op.complete_ns if op.complete_ns is not None else killed_ns
        waits.append(end - op.invoke_ns)
        if end - op.invoke_ns > bound_ns:
            past += 1
    return {"deadline_s": deadline_s, "calls": len(waits), "calls_past_deadline": past,
            "slowest_call_s": round(max(waits) / NS, 3) if waits else None}


def _summary(name: str, power: dict[str, Any], precondition: dict[str, Any]) -> str:
    torn = power.get("torn")
    return (f"{name}: the power loss dropped {power['bytes_dropped']} unsynced bytes "
            f"({power['writes_dropped']} writes) in {power['files_affected']} files"
            + (f", tore {torn['path']}" if torn else "")
            + f"; precondition {'met' if precondition['met'] else 'NOT met'}")


def make_disk_shape(name: str, params: ScenarioParams) -> DiskShape | None:
    """The shape of a disk scenario, None for any other."""
    return DiskShape(name, params) if name in PLANS else None
