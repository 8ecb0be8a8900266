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
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from harness.chaos.catalog import ScenarioParams
from harness.chaos.child import DSN_ENV
from harness.chaos.nemesis_api import ShapeContext, ShapeOutcome
from harness.chaos.sampler import StatusSampler
from harness.chaos.workload import Contact, Group, Workload, WorkloadConfig
from harness.errors import HarnessError
from harness.faults.helpers import Faults
from harness.metrics.fault_timeline import FaultTimeline, Instant
from harness.metrics.history import History
from harness.paths import import_root, project_dir

log = logging.getLogger("harness.chaos")

CHILD_PROCESS_BASE = 0
PARENT_PROCESS_BASE = 1_000_000  # Jepsen process ids of the successor: never the child's
PRE_KEY_ID_OFFSET = 100_000  # the successor's new pre-key ids start above the child's
CHILD_START_S = 180.0  # open + setup of every company in the child
JOURNAL_WAIT_S = 15.0  # after the hold, for the child's journal to hold something
OPEN_S = 60.0
LOAD_S = 30.0  # the successor's first load() of every company
DRAIN_POLL_S = 0.01


class CrashScenarioError(HarnessError):
    """The client-crash course could not be run (the child failed before the fault)."""


class ChildProcess:
    """The child running the target; its stdout status lines are read as they come."""

    def __init__(self, proc: asyncio.subprocess.Process, log_path: Path) -> None:
        self.proc = proc
        self.log_path = log_path
        self.rows: list[dict[str, Any]] = []
        self.last: dict[str, Any] = {}
        self.running_at: float | None = None
        self.running = asyncio.Event()
        self.journal_filled = asyncio.Event()  # a status row showed a non-empty journal
        self.error: str | None = None
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def start(cls, ctx: ShapeContext, history: Path, layout: Path) -> ChildProcess:
        log_path = ctx.work_dir / "child.log"
        # -P and PYTHONPATH: this very harness, never a `harness/` of the project directory
        # the child runs in (relative target paths start there)
        argv = [sys.executable, "-P", "-m", "harness.chaos.child",
                "--target", ctx.target_spec.spec, "--cache-dir", str(ctx.cache_dir),
                "--history", str(history), "--layout", str(layout),
                "--companies", ",".join(ctx.companies), "--seed", str(ctx.seed),
                "--run-tag", f"c{ctx.seed}", "--process-base", str(CHILD_PROCESS_BASE)]
        stderr = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=stderr, cwd=project_dir(), start_new_session=True,
                env={**os.environ, DSN_ENV: ctx.env.proxy_dsn, "PYTHONUNBUFFERED": "1",
                     "PYTHONPATH": os.pathsep.join(
                         p for p in (str(import_root()), os.environ.get("PYTHONPATH")) if p)})
        finally:
            os.close(stderr)
        return cls(proc, log_path)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            kind = event.pop("event", None)
            if kind == "running":
                self.running_at = float(event["t"])
                self.running.set()
            elif kind == "status":
                self.last = event
                if self.journal_depth:
                    self.journal_filled.set()
                self.rows.append({k: event.get(k) for k in
                                  ("t", "mode", "breaker", "journal_depth", "conflicts")})
            elif kind == "error":
                self.error = str(event.get("message"))

    @property
    def journal_depth(self) -> int | None:
        depth = self.last.get("journal_depth")
        return depth if isinstance(depth, int) else None

    async def wait_running(self, within_s: float) -> None:
        exited = asyncio.ensure_future(self.proc.wait())
        running = asyncio.ensure_future(self.running.wait())
        try:
            await asyncio.wait({exited, running}, timeout=within_s,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            exited.cancel()
            running.cancel()
        if not self.running.is_set():
            await asyncio.sleep(0.1)  # let the reader take the child's last line
            raise CrashScenarioError(
                f"the child process running the target did not start its workload within "
                f"{within_s:g} s (exit {self.proc.returncode}): "
                f"{self.error or self.stderr_tail()}",
                hint="run the target through `harness run --suite property --target ...` "
                     "first; the child's log is in the scenario's work directory")

    def stderr_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:].strip() or "(no output)"
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)

    async def reap(self) -> None:
        self.kill()
        with contextlib.suppress(ProcessLookupError, OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        await self.proc.wait()
        with contextlib.suppress(Exception):  # the reader ends at EOF of the dead child
            await asyncio.wait_for(self._reader, 5)


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
        child = await ChildProcess.start(ctx, history_path, layout_path)
        if ctx.observer is not None:  # the child's writes, watched as it records them
            await ctx.observer.follow_file(history_path)
        try:
            ctx.phase("setup", "child process opens the target and pairs the companies")
            await child.wait_running(CHILD_START_S)
            assert child.running_at is not None
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
            layout = json.loads(layout_path.read_text())

            ctx.phase("recover", "a new instance on the same cache_dir replays the journal")
            target = await asyncio.wait_for(
                ctx.target_spec.open(env.proxy_dsn, cache_dir=ctx.cache_dir), OPEN_S)
            opened_s = time.monotonic() - cleared_at
            drain = asyncio.ensure_future(watch_drain(target, cleared_at, params.settle_s +
                                                      params.recovery_s))
            history = ctx.history  # the runner's: its observer follows it already
            workload = Workload(target, ctx.companies, history,
                                config=WorkloadConfig(seed=ctx.seed + 1),
                                run_tag=f"p{ctx.seed}", process_base=PARENT_PROCESS_BASE)
            restore_layout(workload, layout)
            load_failures = await load_companies(workload, LOAD_S)
            sampler = StatusSampler(target)
            sampler.start()
            workload.start()
            try:
                await asyncio.sleep(params.recovery_s)
            finally:
                await workload.stop()
                await sampler.stop()
            drained_s = await drain

            crash = {"journal_depth_at_kill": depth_at_kill,
                     "open_after_heal_s": round(opened_s, 3),
                     "journal_drained_after_heal_s": None if drained_s is None
                     else round(drained_s, 3),
                     "load_failures": load_failures,
                     "child_ops": len(child_history.ops()),
                     "child_pending_ops": sum(1 for op in child_history.ops()
                                              if op.outcome is None)}
            window.params.update(crash)
            notes.append(_summary(crash))
            return ShapeOutcome(
                target=target, started_at=child.running_at, cleared_at=cleared_at,
                samples=child.rows + sampler.samples,
                workload={"child": child.last.get("stats", {}), "successor": workload.stats(),
                          "crash": crash},
                history=History.merge(child_history, history), notes=notes)
        except BaseException:
            if target is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(target.close(), 30)
            raise
        finally:
            await child.reap()
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
