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
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.chaos import results
from harness.chaos.catalog import ScenarioInfo, ScenarioParams
from harness.chaos.client_faults import client_fault_shape
from harness.chaos.crash import make_shape
from harness.chaos.final_read import final_read
from harness.chaos.nemesis import make_nemesis
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
from harness.chaos.outcome import Repetition, ScenarioOutcome
from harness.chaos.sampler import StatusSampler
from harness.chaos.workload import Workload, WorkloadConfig
from harness.dsn import database_of, host_port, with_host_port
from harness.errors import HarnessError
from harness.faults.client import NotFoundError, ToxiproxyClient
from harness.faults.helpers import Faults
from harness.infra.postgres import IsolatedDatabases
from harness.infra.postgres.roles import CannotCreateRole, login_role
from harness.metrics.checker import check
from harness.metrics.fault_timeline import FaultTimeline
from harness.metrics.history import History
from harness.metrics.recovery import availability, journal_summary, recovery
from harness.metrics.timeline import timeline
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


def load_shape(name: str, params: ScenarioParams) -> ScenarioShape | None:
    """A scenario with its own course (client-crash, the other client faults), or None for
    inject/hold/clear."""
    if name == "client-crash":
        return make_shape(params)
    return client_fault_shape(name, params)


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


@dataclass
class _Collected:
    """What a repetition gathered before it is judged."""

    traffic_start: float
    cleared_at: float | None
    deadline_s: float
    history: History
    samples: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    transitions: list[tuple[int, str]] = field(default_factory=list)
    last_status: dict[str, Any] | None = None
    workload: dict[str, Any] = field(default_factory=dict)
    pg_recovery_s: float | None = None
    flush: dict[str, Any] = field(default_factory=dict)
    loop_lag_ms: dict[str, Any] = field(default_factory=dict)


async def _quietly(what: str, awaitable: Any) -> None:
    try:
        await awaitable
    except Exception as exc:  # never hide the scenario's own error behind cleanup
        log.warning("chaos cleanup: %s failed: %s: %s", what, type(exc).__name__, exc)


async def _database(stack: contextlib.AsyncExitStack, server_admin_dsn: str,
                    info: ScenarioInfo) -> tuple[str, str, str | None]:
    """(admin DSN of a fresh database, the DSN the target logs in with, its role or None)."""
    databases = IsolatedDatabases(server_admin_dsn, prefix="chaos")
    database_dsn = await databases.create()
    stack.push_async_callback(lambda: _quietly("dropping the database",
                                               databases.drop(database_dsn)))
    try:
        role = await stack.enter_async_context(login_role(server_admin_dsn, database_dsn))
    except CannotCreateRole as exc:
        if info.needs_role:
            raise ScenarioSkipped(f"{info.name} acts on the target's own LOGIN role: "
                                  f"{exc.message}", hint=exc.hint) from None
        log.warning("chaos: %s; the target connects as the admin login", exc.message)
        return database_dsn, database_dsn, None
    return database_dsn, role.dsn, role.name


async def run_repetition(info: ScenarioInfo, params: ScenarioParams, target_spec: Any,
                         resources: ChaosResources, index: int, *,
                         server: ControllableServer | None, server_admin_dsn: str,
                         workload_config: WorkloadConfig | None = None,
                         seed: int = 0) -> Repetition:
    label = f"chaos {info.name} [{target_spec.name}] rep {index + 1}/{params.repetitions}"
    notes: list[str] = []
    phases: dict[str, float] = {}
    started = time.monotonic()
    shape = load_shape(info.name, params)
    nemesis: Nemesis | None = None if shape else make_nemesis(info.name, params)
    companies = companies_for(params)
    fault_timeline = FaultTimeline()
    async with contextlib.AsyncExitStack() as stack:
        work_dir = Path(tempfile.mkdtemp(prefix="chaos-", dir=resources.work_dir))
        stack.callback(shutil.rmtree, work_dir, ignore_errors=True)
        cache_dir = work_dir / "cache"
        cache_dir.mkdir(mode=0o700)
        admin_dsn, app_dsn, role = await _database(stack, server_admin_dsn, info)
        proxy = await stack.enter_async_context(_Proxy(
            resources.toxiproxy, server_admin_dsn, f"chaos-{info.name}-{secrets.token_hex(4)}"))
        env = ChaosEnv(faults=Faults(resources.toxiproxy, proxy.name, fault_timeline),
                       timeline=fault_timeline, proxy_dsn=proxy.through(app_dsn),
                       direct_dsn=app_dsn, admin_dsn=admin_dsn, app_role=role, server=server,
                       deadline_s=DEFAULT_DEADLINE_S, database=database_of(admin_dsn))
        if shape is not None:
            ctx = ShapeContext(info.name, params, env, target_spec, cache_dir, companies,
                               History(), work_dir, seed)
            resources.say(f"{label}: {shape.name} starts")
            run = await _run_shape(shape, ctx, stack, notes)
        else:
            assert nemesis is not None
            run = await _run_steady(info, params, target_spec, env, nemesis, companies,
                                    workload_config or WorkloadConfig(seed=seed), index,
                                    cache_dir, stack, resources.say, label, phases, notes)
        t0 = time.monotonic()
        final = await final_read(admin_dsn, companies)
        notes += env.notes
    history = run.history
    windows = metric_windows(fault_timeline, run.cleared_at)
    for w in windows:  # the fault's start/stop in the history too: one file tells the story
        history.nemesis(w.kind, "start", at_ns=w.injected_ns)
        if w.cleared_ns is not None:
            history.nemesis(w.kind, "stop", at_ns=w.cleared_ns)
    rep = Repetition(
        index=index, history=history,
        check=check(history, final.final, final_meta=final.final_meta),
        recovery=recovery(history, windows, samples=run.samples, transitions=run.transitions,
                          companies=companies),
        windows=windows, availability=availability(history, windows),
        journal=journal_summary(run.samples, run.last_status),
        timeline=timeline(history, windows, samples=run.samples, transitions=run.transitions,
                          bucket_ms=100, origin_ns=round(run.traffic_start * NS)),
        final=final, flush=run.flush, workload=run.workload, deadline_s=run.deadline_s,
        conflicts=(run.last_status or {}).get("conflicts"), pg_recovery_s=run.pg_recovery_s,
        writes_during_fault=writes_during(history, windows), loop_lag_ms=run.loop_lag_ms,
        duration_s=time.monotonic() - started, phases_s=phases, notes=notes)
    phases["check"] = time.monotonic() - t0
    resources.say(f"{label}: {results.one_line(rep)}")
    return rep


async def _settle_and_close(target: Any, params: ScenarioParams, sampler: StatusSampler | None,
                            run: _Collected, notes: list[str]) -> None:
    run.flush = await _flush(target, params.settle_s)
    if run.flush["returned"] not in (True, None):
        notes.append(f"flush({params.settle_s:g}) returned {run.flush['returned']} after "
                     f"{run.flush['seconds']} s")
    if sampler is not None:
        sampler.sample()
        await sampler.stop()
        # += : a shape's own samples (client-crash: the killed child's) come first
        run.samples += [(round(s["t"] * NS), s) for s in sampler.samples]
        run.transitions += [(round(float(t["at"]) * NS), str(t["state"]))
                            for t in sampler.transitions]
        run.last_status = sampler.last
        run.loop_lag_ms = sampler.lag_summary()


async def _run_steady(info: ScenarioInfo, params: ScenarioParams, target_spec: Any,
                      env: ChaosEnv, nemesis: Nemesis, companies: list[str],
                      config: WorkloadConfig, index: int, cache_dir: Path,
                      stack: contextlib.AsyncExitStack, say: Callable[[str], None], label: str,
                      phases: dict[str, float], notes: list[str]) -> _Collected:
    """Steady traffic, inject / hold / clear, recovery period, flush; the target is closed
    before this returns (or by the exit stack when anything fails)."""
    t0 = time.monotonic()
    target = await asyncio.wait_for(target_spec.open(env.proxy_dsn, cache_dir=cache_dir),
                                    OPEN_TIMEOUT_S)
    closed = False

    async def close_target() -> None:
        if not closed:
            await _bounded(target.close(), CLOSE_TIMEOUT_S, "target close()", notes)

    stack.push_async_callback(close_target)
    env.deadline_s = _deadline_of(target)
    history = History()
    workload = Workload(target, companies, history, config=config, run_tag=f"r{index}")
    await workload.setup()
    env.workload = workload
    phases["setup"] = time.monotonic() - t0
    sampler = StatusSampler(target)
    stack.push_async_callback(sampler.stop)
    sampler.start()
    workload.start()
    stack.push_async_callback(lambda: workload.stop(grace_s=1.0))
    run = _Collected(traffic_start=workload.started_at or time.monotonic(), cleared_at=None,
                     deadline_s=env.deadline_s, history=history)
    say(f"{label}: setup {phases['setup']:.1f} s ({len(companies)} companies); "
        f"warmup {params.warmup_s:g} s")
    await asyncio.sleep(params.warmup_s)
    say(f"{label}: fault {info.name} for {params.fault_span_s:g} s")
    fault_t0 = time.monotonic()
    try:
        await nemesis.inject(env)
        await asyncio.sleep(max(0.0, params.fault_span_s - (time.monotonic() - fault_t0)))
    finally:
        run.cleared_at = await asyncio.wait_for(asyncio.shield(nemesis.clear(env)),
                                                CLEAR_TIMEOUT_S)
    run.pg_recovery_s = nemesis.pg_recovery_s()
    phases["fault"] = time.monotonic() - fault_t0
    say(f"{label}: recover {params.recovery_s:g} s (traffic continues)"
        + (f"; PostgreSQL took {run.pg_recovery_s:.2f} s to accept connections again"
           if run.pg_recovery_s is not None else ""))
    await asyncio.sleep(params.recovery_s)
    await workload.stop()
    run.workload = workload.stats()
    failure = getattr(target, "failure", None)  # optional hook: the target itself died
    if callable(failure) and (error := failure()) is not None:
        raise error  # a harness error naming the cause, not a scenario measured on a dead target
    if run.workload.get("hung"):
        notes.append(f"{run.workload['hung']} target calls did not return within "
                     f"{config.op_timeout_s:g} s and were cancelled (recorded as info/fail)")
    t0 = time.monotonic()
    await _settle_and_close(target, params, sampler, run, notes)
    phases["flush"] = time.monotonic() - t0
    say(f"{label}: check (flush {run.flush['method']} -> {run.flush['returned']} in "
        f"{run.flush['seconds']:.2f} s; final read straight from PostgreSQL)")
    await close_target()
    closed = True
    return run


async def _run_shape(shape: ScenarioShape, ctx: ShapeContext, stack: contextlib.AsyncExitStack,
                     notes: list[str]) -> _Collected:
    outcome: ShapeOutcome = await shape.run(ctx)
    target = outcome.target
    if target is not None:
        stack.push_async_callback(
            lambda: _bounded(target.close(), CLOSE_TIMEOUT_S, "target close()", notes))
    run = _Collected(traffic_start=outcome.started_at, cleared_at=outcome.cleared_at,
                     deadline_s=ctx.env.deadline_s,
                     history=outcome.history if outcome.history is not None else ctx.history,
                     samples=[(round(s["t"] * NS), s) for s in outcome.samples],
                     workload=dict(outcome.workload), pg_recovery_s=outcome.pg_recovery_s)
    notes += outcome.notes
    if target is not None:
        sampler = StatusSampler(target)
        await _settle_and_close(target, ctx.params, sampler, run, notes)
    else:
        run.flush = {"method": "none", "returned": None, "seconds": 0.0}
    return run


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
        return results.skipped(info, params, target_spec.name, contrast, reason)
    return results.assemble(info, params, target_spec.name, reps, contrast=contrast)
