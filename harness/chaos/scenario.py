"""The scenario runner: one scenario, N repetitions, each on a fresh database.

One repetition:
    fresh database + LOGIN role -> proxy in front of PostgreSQL -> target opened on the proxied
    app-role DSN with a fresh cache_dir -> setup (pairing, keys) -> workers start -> warmup ->
    nemesis.inject -> hold -> nemesis.clear -> recovery period -> workers stop -> flush (or a
    settle time) -> final read straight from PostgreSQL -> close target -> checker + recovery
    figures -> drop proxy, database and role.
Everything started is stopped whatever happens (failure, Ctrl-C): workers cancelled, the fault
cleared, the target closed with a bound (a hung close is reported, not waited for), the proxy
deleted, the database dropped.

`run_scenario` returns a `ScenarioOutcome`: the section dict for `record_section("chaos", ...)`,
the figures, and what the suite asserts on. Shapes other than inject/hold/clear (client-crash)
plug in through `nemesis_api.ScenarioShape`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.chaos import results
from harness.chaos.catalog import ScenarioInfo, ScenarioParams
from harness.chaos.database import ScenarioDatabase
from harness.chaos.final_read import FinalRead, final_read
from harness.chaos.nemesis_api import (
    DEFAULT_DEADLINE_S,
    ChaosEnv,
    ControllableServer,
    Nemesis,
    NemesisUnavailable,
    ScenarioShape,
    ShapeContext,
    ShapeOutcome,
)
from harness.chaos.sampler import StatusSampler
from harness.chaos.workload import Workload, WorkloadConfig
from harness.dsn import host_port, with_host_port
from harness.errors import HarnessError
from harness.faults.client import NotFoundError, ToxiproxyClient
from harness.faults.helpers import Faults
from harness.metrics.checker import CheckResult, check
from harness.metrics.fault_timeline import FaultTimeline
from harness.metrics.history import History
from harness.metrics.recovery import RecoveryResult, availability, journal_summary, recovery
from harness.metrics.timeline import Timeline, timeline
from harness.metrics.windows import NS, Window, as_window

log = logging.getLogger("harness.chaos")

OPEN_TIMEOUT_S = 60.0
CLOSE_TIMEOUT_S = 30.0
CLEAR_TIMEOUT_S = 120.0  # a process fault's clear waits for PostgreSQL's crash recovery
NO_FLUSH_SETTLE_S = 1.0  # targets without flush() write through before acknowledging


class ScenarioSkipped(HarnessError):
    """This scenario cannot run here; the message says why and how to enable it."""


@dataclass
class ChaosResources:
    """What the runner needs from the pytest session (built by fixtures/chaos.py)."""

    toxiproxy: ToxiproxyClient
    server_admin_dsn: str  # the provisioned server: network and SQL faults run here
    server_kind: str  # embedded | container | external
    # Process faults: a server the harness may kill; None and a reason when it has none.
    process_server: Callable[[], ControllableServer | None]
    process_skip_reason: Callable[[], str] = lambda: ""
    work_dir: Path | None = None
    say: Callable[[str], None] = lambda line: log.info("%s", line)


@dataclass
class Repetition:
    """What one repetition measured (kept whole for tests; the section holds summaries)."""

    index: int
    history: History
    check: CheckResult
    recovery: RecoveryResult
    windows: list[Window]
    availability: dict[str, Any]
    journal: dict[str, Any]
    timeline: Timeline
    final: FinalRead
    flush: dict[str, Any]
    workload: dict[str, Any]
    deadline_s: float
    conflicts: int | None
    pg_recovery_s: float | None
    writes_during_fault: int
    duration_s: float
    phases_s: dict[str, float]
    notes: list[str] = field(default_factory=list)


@dataclass
class ScenarioOutcome:
    info: ScenarioInfo
    params: ScenarioParams
    target: str
    contrast: bool
    verdict: str  # passed | failed | skipped | error
    section: dict[str, Any]
    figures: list[Any]
    repetitions: list[Repetition] = field(default_factory=list)
    reason: str = ""


def load_nemesis_factory() -> Callable[[str, ScenarioParams], Any]:
    """The full set of nemeses when present, else the engine's sever/blackhole fallback."""
    try:
        from harness.chaos.nemesis import make_nemesis
    except ImportError:
        from harness.chaos.fallback_nemesis import make_nemesis
    return make_nemesis


def load_shape(name: str, params: ScenarioParams) -> ScenarioShape | None:
    """A scenario with its own course (client-crash), or None for inject/hold/clear."""
    if name != "client-crash":
        return None
    try:
        from harness.chaos.client_crash import make_shape
    except ImportError:
        raise NemesisUnavailable(
            "the client-crash scenario is not available in this checkout "
            "(harness.chaos.client_crash is missing)", hint="update the checkout") from None
    return make_shape(params)


def companies_for(params: ScenarioParams) -> list[str]:
    return [f"co{i:03d}" for i in range(params.companies)]


async def _bounded(awaitable: Any, seconds: float, what: str, notes: list[str]) -> Any:
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        notes.append(f"{what} did not finish within {seconds:g} s (abandoned)")
        log.warning("chaos: %s did not finish within %g s", what, seconds)
        return None


async def _flush(target: Any, settle_s: float) -> dict[str, Any]:
    flush = getattr(target, "flush", None)
    started = time.monotonic()
    if not callable(flush):
        await asyncio.sleep(NO_FLUSH_SETTLE_S)
        return {"method": "settle", "returned": None, "seconds": NO_FLUSH_SETTLE_S}
    try:
        done = await asyncio.wait_for(flush(timeout=settle_s), settle_s + 10.0)
        returned: Any = bool(done)
    except TimeoutError:
        returned = "hung"
    except Exception as exc:  # reported; the final read shows what did land
        returned = f"raised {type(exc).__name__}"
    return {"method": "flush", "returned": returned,
            "seconds": round(time.monotonic() - started, 3)}


def _deadline_of(target: Any) -> float:
    status = getattr(target, "status", None)
    if callable(status):
        with contextlib.suppress(Exception):
            value = status().get("deadline_s")
            if isinstance(value, (int, float)) and value > 0:
                return float(value)
    value = getattr(target, "operation_deadline", None)
    return float(value) if isinstance(value, (int, float)) and value > 0 else DEFAULT_DEADLINE_S


class _Proxy:
    """A uniquely named proxy in front of the scenario's server, deleted on exit."""

    def __init__(self, client: ToxiproxyClient, upstream_dsn: str, name: str) -> None:
        self.client, self.name = client, name
        host, port = host_port(upstream_dsn)
        self.upstream = f"{host}:{port}"
        self.listen: tuple[str, int] | None = None

    async def __aenter__(self) -> _Proxy:
        proxy = await asyncio.to_thread(lambda: self.client.create_proxy(
            self.name, self.upstream, listen="127.0.0.1:0"))
        self.listen = (proxy.listen_host, proxy.listen_port)
        return self

    def through(self, dsn: str) -> str:
        assert self.listen is not None
        return with_host_port(dsn, *self.listen)

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(NotFoundError):
            await asyncio.to_thread(self.client.delete_proxy, self.name)


async def run_repetition(info: ScenarioInfo, params: ScenarioParams, target_spec: Any,
                         resources: ChaosResources, index: int, *,
                         server: ControllableServer | None, server_admin_dsn: str,
                         workload_config: WorkloadConfig | None = None,
                         seed: int = 0) -> Repetition:
    say = resources.say
    label = f"chaos {info.name} [{target_spec.name}] rep {index + 1}/{params.repetitions}"
    notes: list[str] = []
    phases: dict[str, float] = {}
    started = time.monotonic()
    shape = load_shape(info.name, params)
    nemesis: Nemesis | None = None if shape else load_nemesis_factory()(info.name, params)
    companies = companies_for(params)
    config = workload_config or WorkloadConfig(seed=seed)
    work_dir = Path(tempfile.mkdtemp(prefix="chaos-", dir=resources.work_dir))
    cache_dir = work_dir / "cache"
    cache_dir.mkdir(mode=0o700)
    history = History()
    timeline_ = FaultTimeline()
    target: Any = None
    workload: Workload | None = None
    sampler: StatusSampler | None = None
    injected = False
    db = await ScenarioDatabase.create(server_admin_dsn)
    try:
        if info.needs_role and db.app_role is None:
            raise ScenarioSkipped(
                f"{info.name} acts on the target's own LOGIN role, and the admin login of this "
                "server may not create roles", hint="give the --dsn user CREATEROLE, or run "
                "without --dsn (the embedded server)")
        async with _Proxy(resources.toxiproxy, server_admin_dsn,
                          f"chaos-{info.name}-{db.name[-12:]}") as proxy:
            faults = Faults(resources.toxiproxy, proxy.name, timeline_)
            proxy_dsn = proxy.through(db.app_dsn)
            env = ChaosEnv(faults=faults, timeline=timeline_, proxy_dsn=proxy_dsn,
                           direct_dsn=db.app_dsn, admin_dsn=db.admin_dsn,
                           app_role=db.app_role, server=server,
                           deadline_s=DEFAULT_DEADLINE_S, database=db.name)
            if shape is not None:
                ctx = ShapeContext(info.name, params, env, target_spec, cache_dir, companies,
                                   history, work_dir, seed)
                say(f"{label}: {shape.name} shape starts")
                outcome: ShapeOutcome = await shape.run(ctx)
                target, cleared_at = outcome.target, outcome.cleared_at
                traffic_start, pg_recovery = outcome.started_at, outcome.pg_recovery_s
                samples = [(round(s["t"] * NS), s) for s in outcome.samples]
                transitions: list[tuple[int, str]] = []
                notes += outcome.notes + env.notes
                deadline = env.deadline_s
                workload_stats: dict[str, Any] = dict(outcome.workload)
                last_status = None
            else:
                assert nemesis is not None
                t0 = time.monotonic()
                target = await asyncio.wait_for(
                    target_spec.open(proxy_dsn, cache_dir=cache_dir), OPEN_TIMEOUT_S)
                deadline = env.deadline_s = _deadline_of(target)
                workload = Workload(target, companies, history, config=config,
                                    run_tag=f"r{index}")
                await workload.setup()
                env.workload = workload
                phases["setup"] = time.monotonic() - t0
                sampler = StatusSampler(target)
                sampler.start()
                workload.start()
                traffic_start = workload.started_at or time.monotonic()
                say(f"{label}: setup {phases['setup']:.1f} s ({len(companies)} companies); "
                    f"warmup {params.warmup_s:g} s")
                await asyncio.sleep(params.warmup_s)
                say(f"{label}: fault {info.name} for {params.fault_span_s:g} s")
                fault_t0 = time.monotonic()
                try:
                    injected = True
                    await nemesis.inject(env)
                    await asyncio.sleep(max(0.0, params.fault_span_s
                                            - (time.monotonic() - fault_t0)))
                finally:
                    cleared_at = await asyncio.wait_for(nemesis.clear(env), CLEAR_TIMEOUT_S)
                    injected = False
                pg_recovery = nemesis.pg_recovery_s()
                phases["fault"] = time.monotonic() - fault_t0
                say(f"{label}: recover {params.recovery_s:g} s (traffic continues)"
                    + (f"; PostgreSQL took {pg_recovery:.2f} s to accept again"
                       if pg_recovery is not None else ""))
                await asyncio.sleep(params.recovery_s)
                await workload.stop()
                workload_stats = workload.stats()
                notes += env.notes
            t0 = time.monotonic()
            flush = await _flush(target, params.settle_s) if target is not None else {
                "method": "none", "returned": None, "seconds": 0.0}
            phases["flush"] = time.monotonic() - t0
            if sampler is not None:
                sampler.sample()
                await sampler.stop()
                samples = [(round(s["t"] * NS), s) for s in sampler.samples]
                transitions = [(round(float(t["at"]) * NS), str(t["state"]))
                               for t in sampler.transitions]
                last_status = sampler.last
            if flush["returned"] not in (True, None):
                notes.append(f"flush({params.settle_s:g}) returned {flush['returned']} after "
                             f"{flush['seconds']} s")
            say(f"{label}: check (flush {flush['method']} -> {flush['returned']} in "
                f"{flush['seconds']:.2f} s; final read)")
            t0 = time.monotonic()
            final = await final_read(db.admin_dsn, companies)
            if target is not None:
                closing, target = target, None
                await _bounded(closing.close(), CLOSE_TIMEOUT_S, "target close()", notes)
    finally:
        if workload is not None and workload.running:
            await workload.stop(grace_s=1.0)
        if sampler is not None:
            await sampler.stop()
        if injected and nemesis is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nemesis.clear(env), CLEAR_TIMEOUT_S)
        if target is not None:
            await _bounded(target.close(), CLOSE_TIMEOUT_S, "target close()", notes)
        try:
            await db.drop()
        except Exception as exc:  # never hide the scenario's own error behind cleanup
            log.warning("chaos: could not drop %s: %s", db.name, exc)
        shutil.rmtree(work_dir, ignore_errors=True)

    windows = metric_windows(timeline_, cleared_at)
    for w in windows:  # the fault's start/stop in the history too: one file tells the story
        history.nemesis(w.kind, "start", at_ns=w.injected_ns)
        if w.cleared_ns is not None:
            history.nemesis(w.kind, "stop", at_ns=w.cleared_ns)
    checked = check(history, final.final, final_meta=final.final_meta)
    recovered = recovery(history, windows, samples=samples, transitions=transitions,
                         companies=companies)
    rep = Repetition(
        index=index, history=history, check=checked, recovery=recovered, windows=windows,
        availability=availability(history, windows),
        journal=journal_summary(samples, last_status),
        timeline=timeline(history, windows, samples=samples, transitions=transitions,
                          bucket_ms=100, origin_ns=round(traffic_start * NS)),
        final=final, flush=flush, workload=workload_stats, deadline_s=deadline,
        conflicts=(last_status or {}).get("conflicts") if last_status else None,
        pg_recovery_s=pg_recovery, writes_during_fault=writes_during(history, windows),
        duration_s=time.monotonic() - started, phases_s=phases, notes=notes)
    phases["check"] = time.monotonic() - t0
    say(f"{label}: {results.one_line(rep)}")
    return rep


def metric_windows(fault_timeline: FaultTimeline, cleared_at: float | None) -> list[Window]:
    """The fault windows the metrics start from; the last one ends no earlier than the time
    the nemesis returned from `clear` (process faults: when PostgreSQL accepted connections
    again, as seen by the nemesis' own probe)."""
    windows = [as_window(w) for w in fault_timeline.windows]
    if not windows or cleared_at is None:
        return windows
    last = windows[-1]
    end = round(cleared_at * NS)
    if last.cleared_ns is None or end > last.cleared_ns:
        windows[-1] = Window(last.kind, last.injected_ns, end)
    return windows


def writes_during(history: History, windows: list[Window]) -> int:
    return sum(1 for op in history.ops()
               if op.is_write and any(w.covers(op.invoke_ns) for w in windows))


async def run_scenario(info: ScenarioInfo, params: ScenarioParams, target_spec: Any,
                       resources: ChaosResources, *, contrast: bool = False,
                       workload_config: WorkloadConfig | None = None) -> ScenarioOutcome:
    """Every repetition of one scenario; the outcome carries the section and the figures."""
    server: ControllableServer | None = None
    server_admin_dsn = resources.server_admin_dsn
    try:
        if info.needs_process_control:
            server = await asyncio.to_thread(resources.process_server)
            if server is None:
                raise ScenarioSkipped(resources.process_skip_reason() or (
                    f"{info.name} stops the PostgreSQL process, and this run's server is not "
                    "one the harness controls"), hint="run without --dsn (embedded server)")
            server_admin_dsn = server.dsn
        reps: list[Repetition] = []
        for index in range(params.repetitions):
            reps.append(await run_repetition(
                info, params, target_spec, resources, index, server=server,
                server_admin_dsn=server_admin_dsn, workload_config=workload_config,
                seed=index))
    except (ScenarioSkipped, NemesisUnavailable) as exc:
        reason = exc.message + (f" ({exc.hint})" if exc.hint else "")
        resources.say(f"chaos {info.name} [{target_spec.name}]: skipped: {reason}")
        return results.skipped(info, params, target_spec.name, contrast, reason)
    return results.assemble(info, params, target_spec.name, reps, contrast=contrast)
