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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.chaos import results
from harness.chaos.catalog import ScenarioInfo, ScenarioParams, repetition_draw
from harness.chaos.child_process import CrashScenarioError
from harness.chaos.client_faults import client_fault_shape
from harness.chaos.crash import make_shape
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
from harness.chaos.observer import Observer
from harness.chaos.outcome import Repetition, ScenarioOutcome
from harness.chaos.preconditions import evaluate
from harness.chaos.results import HANG_MARGIN_S
from harness.chaos.sampler import StatusSampler
from harness.chaos.signal_beside import SignalBeside, SignalConversations, close_quietly
from harness.chaos.workload import Workload, WorkloadConfig, WorkloadSetupError
from harness.dsn import database_of, host_port, with_host_port
from harness.errors import ConfigError, HarnessError
from harness.faults.client import NotFoundError, ToxiproxyClient
from harness.faults.helpers import Faults
from harness.infra.postgres import IsolatedDatabases
from harness.infra.postgres.roles import CannotCreateRole, login_role
from harness.metrics.bulk import collector_paused
from harness.metrics.checker import CRASH, SETUP_FAILED, Anomaly, check
from harness.metrics.durability import Durability
from harness.metrics.fault_timeline import FaultTimeline
from harness.metrics.history import History
from harness.metrics.observed_recovery import observed_recovery
from harness.metrics.recovery import availability, journal_summary, recovery
from harness.metrics.timeline import timeline
from harness.metrics.windows import NS, Window, as_window, episodes
from harness.node_target.errors import NodeUnavailable
from harness.observe import refs_of_history
from harness.observe.final_read import final_read
from harness.signal.profiles import SignalParams
from harness.signal.workload import SignalSetupError

log = logging.getLogger("harness.chaos")

OPEN_TIMEOUT_S = 60.0
CUT_GRACE_NS = 50_000_000  # for a fault to take effect once its window opened
PRECONDITION_RETRIES = 2
CLOSE_TIMEOUT_S = 30.0
CLEAR_TIMEOUT_S = 120.0  # a process fault's clear waits for PostgreSQL's crash recovery


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
    """A scenario with its own course (client-crash, the other client faults, the disk
    faults), or None for inject/hold/clear."""
    if name == "client-crash":
        return make_shape(params)
    from harness.chaos.disk_shapes import make_disk_shape

    return client_fault_shape(name, params) or make_disk_shape(name, params)


def companies_for(params: ScenarioParams) -> list[str]:
    return [f"co{i:03d}" for i in range(params.companies)]


async def _bounded(awaitable: Any, seconds: float, what: str, notes: list[str]) -> Any:
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        notes.append(f"{what} did not finish within {seconds:g} s (abandoned)")
        log.warning("chaos: %s did not finish within %g s", what, seconds)
        return None


def _deadline_of(target: Any) -> float | None:
    """The deadline the target says it keeps (reported beside the harness's own; never used
    to judge it). None when it does not say."""
    status = getattr(target, "status", None)
    if callable(status):
        with contextlib.suppress(Exception):
            value = status().get("deadline_s")
            if isinstance(value, (int, float)) and value > 0:
                return float(value)
    value = getattr(target, "operation_deadline", None)
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


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
    history: History
    store_deadline_s: float | None = None  # what the target says its deadline is (reported)
    effective_at: float | None = None  # the first injection had returned: the fault is on
    samples: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    transitions: list[tuple[int, str]] = field(default_factory=list)
    last_status: dict[str, Any] | None = None
    workload: dict[str, Any] = field(default_factory=dict)
    pg_recovery_s: float | None = None
    flush: dict[str, Any] = field(default_factory=dict)
    loop_lag_ms: dict[str, Any] = field(default_factory=dict)
    anomalies: list[Anomaly] = field(default_factory=list)  # crash, setup-failed
    signal: SignalConversations | None = None  # real Signal conversations (beside / across)


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


def target_anomaly(name: str, message: str, *, detail: dict[str, Any] | None = None) -> Anomaly:
    """An anomaly about the target as a whole (it crashed, it failed its set-up)."""
    return Anomaly(name, "*", None, "target", note=message[:2000], detail=detail or {})


def crash_anomaly(error: BaseException) -> Anomaly:
    """The target's process died: what it said last is the most useful thing to show."""
    tail = str(getattr(error, "output_tail", "") or "")
    # (the section is scrubbed of passwords and key-like text when it is recorded)
    return target_anomaly(CRASH, f"{error}", detail={"exit_code": getattr(
        error, "returncode", None), "output_tail": tail[-3000:]})


async def run_repetition(info: ScenarioInfo, params: ScenarioParams, target_spec: Any,
                         resources: ChaosResources, index: int, *,
                         server: ControllableServer | None, server_admin_dsn: str,
                         workload_config: WorkloadConfig | None = None,
                         seed: int = 0, deadline_s: float = DEFAULT_DEADLINE_S,
                         attempt: int = 1, signal: SignalParams | None = None) -> Repetition:
    label = (f"chaos {info.name} [{target_spec.name}] rep {index + 1}/{params.repetitions}"
             if index < params.repetitions else
             f"chaos {info.name} [{target_spec.name}] rep {index + 1} (measuring more)")
    if attempt > 1:
        label += f" (attempt {attempt})"
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
                       deadline_s=deadline_s, database=database_of(admin_dsn))
        observer = Observer(admin_dsn, work_dir, target=target_spec.spec,
                            probe_dsn=env.proxy_dsn)
        stack.push_async_callback(lambda: _quietly("closing the observer", observer.close()))
        await observer.open()
        env.observer = observer
        history = History(sink=work_dir / "history.jsonl")
        stack.callback(history.close)
        await observer.follow(history)
        if shape is not None:
            ctx = ShapeContext(info.name, params, env, target_spec, cache_dir, companies,
                               history, work_dir, seed, observer=observer, signal=signal)
            resources.say(f"{label}: {shape.name} starts")
            run = await _run_shape(shape, ctx, stack, notes)
        else:
            assert nemesis is not None
            run = await _run_steady(info, params, target_spec, env, nemesis, companies,
                                    workload_config or WorkloadConfig(seed=seed), index,
                                    cache_dir, stack, resources.say, label, phases, notes,
                                    history, observer, signal)
        observations = await observer.stop()
        t0 = time.monotonic()
        read_companies = companies + (run.signal.companies if run.signal is not None else [])
        with collector_paused():
            final = await final_read(admin_dsn, read_companies, target_spec=target_spec,
                                     direct_dsn=env.direct_dsn, work_dir=work_dir,
                                     refs_by_company=refs_of_history(run.history))
        observations.record_final(time.monotonic_ns(), final.final)
        notes += env.notes + final.notes
    with collector_paused():  # judging allocates big indexes: see harness.metrics.bulk
        history = run.history
        windows = metric_windows(fault_timeline, run.cleared_at)
        for w in windows:  # the fault's start/stop in the history too: one file tells the story
            history.nemesis(w.kind, "start", at_ns=w.injected_ns)
            if w.cleared_ns is not None:
                history.nemesis(w.kind, "stop", at_ns=w.cleared_ns)
        ops = history.ops()
        durability = Durability(ops, observations)
        cut_from = cut_times(info, windows, run.effective_at)
        end_ns = max((op.complete_ns or op.invoke_ns for op in ops), default=0)
        checked = check(history, final.final, final_meta=final.final_meta, durability=durability,
                        hang_after_s=deadline_s + HANG_MARGIN_S, extra=run.anomalies,
                        unreadable=final.unreadable)
        rep = Repetition(
            index=index, history=history, check=checked,
            signal=None if run.signal is None else run.signal.section(
                f"chaos {info.name}", target_spec.name, contrast=False, check=checked,
                history=history, windows=windows),
            recovery=observed_recovery(history, windows, durability, deadline_s=deadline_s,
                                       cut_from_ns=cut_from, companies=companies),
            reported=recovery(history, windows, samples=run.samples, transitions=run.transitions,
                              companies=companies),
            preconditions=evaluate(info.precondition, info.felt, windows=windows,
                                   params=[w.params for w in fault_timeline.windows],
                                   observations=observations, ops=ops,
                                   durability=durability, deadline_s=deadline_s,
                                   cut_from_ns=cut_from, end_ns=end_ns),
            observer={**observer.summary(), "durability": durability.summary()},
            windows=windows, availability=availability(history, windows),
            journal=journal_summary(run.samples, run.last_status),
            timeline=timeline(history, windows, samples=run.samples, transitions=run.transitions,
                              bucket_ms=100, origin_ns=round(run.traffic_start * NS)),
            final=final, flush=run.flush, workload=run.workload, deadline_s=deadline_s,
            store_deadline_s=run.store_deadline_s,
            conflicts=(run.last_status or {}).get("conflicts"), pg_recovery_s=run.pg_recovery_s,
            writes_during_fault=writes_during(history, windows), loop_lag_ms=run.loop_lag_ms,
            duration_s=time.monotonic() - started, phases_s=phases, notes=notes, attempt=attempt)
    phases["check"] = time.monotonic() - t0
    resources.say(f"{label}: {results.one_line(rep)}")
    return rep


def cut_times(info: ScenarioInfo, windows: list[Window],
              effective_at: float | None) -> dict[int, int]:
    """Per fault window: from when calls could not reach PostgreSQL (faults that cut the
    path): the window's start plus a grace for the fault to take effect, and for the first
    window no earlier than the moment its injection had returned."""
    if not info.cuts_path:
        return {}
    cuts = {}
    for i, w in enumerate(episodes(windows)):
        cut = w.injected_ns + CUT_GRACE_NS
        if i == 0 and effective_at is not None:
            cut = max(cut, round(effective_at * NS))
        cuts[i] = cut
    return cuts


async def _settle(target: Any, params: ScenarioParams, observer: Observer,
                  notes: list[str]) -> dict[str, Any]:
    """Give the target time to make its acknowledged writes durable: until the observer has
    seen all of them in PostgreSQL (its own judgement), at most `settle_s`. The target's own
    `flush(timeout)` is called alongside when it has one (its answer is only reported)."""
    started = time.monotonic()
    flush = getattr(target, "flush", None)
    returned: Any = None
    flush_task = (asyncio.ensure_future(flush(timeout=params.settle_s))
                  if callable(flush) else None)
    while time.monotonic() - started < params.settle_s:
        await observer.round()
        if await observer.waiting() == 0 and (flush_task is None or flush_task.done()):
            break
        await asyncio.sleep(0.05)
    if flush_task is not None:
        try:
            returned = bool(await asyncio.wait_for(flush_task, 10.0))
        except TimeoutError:
            returned = "hung"
        except Exception as exc:  # reported; the final read shows what did land
            returned = f"raised {type(exc).__name__}"
    waiting = await observer.waiting()
    if waiting:
        notes.append(f"settle: after {params.settle_s:g} s the observer still had not seen "
                     f"{waiting} acknowledged write(s) in PostgreSQL")
    if returned not in (True, None):
        notes.append(f"flush({params.settle_s:g}) returned {returned}")
    return {"method": "observer" + ("+flush" if flush_task is not None else ""),
            "returned": returned, "waiting": waiting,
            "seconds": round(time.monotonic() - started, 3)}


async def _settle_and_close(target: Any, params: ScenarioParams, sampler: StatusSampler | None,
                            run: _Collected, observer: Observer, notes: list[str]) -> None:
    run.flush = await _settle(target, params, observer, notes)
    if sampler is not None:
        sampler.sample()
        await sampler.stop()
        # += : a shape's own samples (client-crash: the killed child's) come first
        run.samples += [(round(s["t"] * NS), s) for s in sampler.samples]
        run.transitions += [(round(float(t["at"]) * NS), str(t["state"]))
                            for t in sampler.transitions]
        run.last_status = sampler.last
        run.loop_lag_ms = sampler.lag_summary()


def _target_died(target: Any) -> BaseException | None:
    """The target's own process died (a Node.js sidecar crashed): its `failure()` hook."""
    failure = getattr(target, "failure", None)
    return failure() if callable(failure) else None


async def _run_steady(info: ScenarioInfo, params: ScenarioParams, target_spec: Any,
                      env: ChaosEnv, nemesis: Nemesis, companies: list[str],
                      config: WorkloadConfig, index: int, cache_dir: Path,
                      stack: contextlib.AsyncExitStack, say: Callable[[str], None], label: str,
                      phases: dict[str, float], notes: list[str], history: History,
                      observer: Observer, signal: SignalParams | None = None) -> _Collected:
    """Steady traffic, inject / hold / clear, recovery period, settle; the target is closed
    before this returns (or by the exit stack when anything fails). What the target does
    (fails to open or to set up on a healthy database, crashes) is recorded as an anomaly,
    not raised: it is the verdict."""
    t0 = time.monotonic()
    run = _Collected(traffic_start=t0, cleared_at=None, history=history)
    try:
        target = await asyncio.wait_for(target_spec.open(env.proxy_dsn, cache_dir=cache_dir),
                                        OPEN_TIMEOUT_S)
    except ConfigError:
        raise  # not a store at all: the user's configuration, not a finding
    except (Exception, TimeoutError) as exc:
        run.anomalies.append(target_anomaly(
            SETUP_FAILED, f"the target failed to open on a healthy database: "
                          f"{type(exc).__name__}: {exc}"))
        return run
    closed = False

    async def close_target() -> None:
        if not closed:
            await _bounded(target.close(), CLOSE_TIMEOUT_S, "target close()", notes)

    stack.push_async_callback(close_target)
    run.store_deadline_s = _deadline_of(target)
    workload = Workload(target, companies, history, config=config, run_tag=f"r{index}")
    beside = None
    if signal is not None:
        beside = SignalBeside(target, signal, history, run_tag=f"s{index}")
        stack.push_async_callback(lambda: close_quietly(beside))
        beside.workload.start_engine()  # Node.js loads Baileys while the companies pair
    try:
        await workload.setup()
    except WorkloadSetupError as exc:
        died = _target_died(target)
        run.anomalies.append(crash_anomaly(died) if died is not None else target_anomaly(
            SETUP_FAILED, exc.message))
        return run
    env.workload = workload
    if beside is not None:
        try:
            run.signal = await _set_up_signal(beside, notes)
        except SignalSetupError as exc:
            died = _target_died(target)
            run.anomalies.append(crash_anomaly(died) if died is not None else target_anomaly(
                SETUP_FAILED, exc.message))
            return run
    phases["setup"] = time.monotonic() - t0
    await observer.round()  # every set-up write seen durable before traffic: not measured
    await observer.start()
    sampler = StatusSampler(target)
    stack.push_async_callback(sampler.stop)
    sampler.start()
    workload.start()
    if run.signal is not None:
        run.signal.start()
    stack.push_async_callback(lambda: workload.stop(grace_s=1.0))
    run.traffic_start = workload.started_at or time.monotonic()
    say(f"{label}: setup {phases['setup']:.1f} s ({len(companies)} companies); "
        f"warmup {params.warmup_s:g} s")
    await asyncio.sleep(params.warmup_s)
    say(f"{label}: fault {info.name} for {params.fault_span_s:g} s")
    fault_t0 = time.monotonic()
    try:
        await nemesis.inject(env)
        run.effective_at = time.monotonic()
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
    if run.signal is not None:  # messages in flight settle, then its engine stops
        await run.signal.stop()
        await run.signal.close()
        if isinstance(run.signal, SignalBeside):  # its Node.js starts while the target closes
            run.signal.prepare_new_pod()
    run.workload = workload.stats()
    died = _target_died(target)
    if died is not None:  # the finding: judge what landed, show what it said last
        run.anomalies.append(crash_anomaly(died))
        notes.append(f"the target's process died: {died}")
    if run.workload.get("hung"):
        notes.append(f"{run.workload['hung']} target calls did not return within "
                     f"{config.op_timeout_s:g} s and were cancelled (recorded as info/fail)")
    t0 = time.monotonic()
    await _settle_and_close(target, params, sampler, run, observer, notes)
    phases["settle"] = time.monotonic() - t0
    say(f"{label}: check (settle {run.flush['method']} in {run.flush['seconds']:.2f} s; "
        f"final read straight from PostgreSQL)")
    await close_target()
    closed = True
    if run.signal is not None:
        say(f"{label}: signal new pod (a fresh instance, empty cache, only PostgreSQL)")
        await run.signal.check_new_pod(target_spec, env.proxy_dsn,
                                       cache_dir.parent / "signal-new-pod")
    return run


async def _set_up_signal(beside: SignalBeside, notes: list[str]) -> SignalBeside | None:
    """Real Signal conversations on companies of their own, set up before the traffic starts
    (None, with a note, when Node.js is not there to run Baileys)."""
    try:
        await beside.setup()
    except NodeUnavailable as exc:
        notes.append(f"signal conversations not run: {exc.message} ({exc.hint})")
        await close_quietly(beside)
        return None
    return beside


async def _run_shape(shape: ScenarioShape, ctx: ShapeContext, stack: contextlib.AsyncExitStack,
                     notes: list[str]) -> _Collected:
    assert ctx.observer is not None
    await ctx.observer.start()
    try:
        outcome: ShapeOutcome = await shape.run(ctx)
    except CrashScenarioError as exc:  # the target's process never got its workload going
        run = _Collected(traffic_start=time.monotonic(), cleared_at=None, history=ctx.history)
        run.anomalies.append(target_anomaly(SETUP_FAILED, str(exc)))
        return run
    target = outcome.target
    closed = False

    async def close_target() -> None:
        nonlocal closed
        if target is not None and not closed:
            closed = True
            await _bounded(target.close(), CLOSE_TIMEOUT_S, "target close()", notes)

    stack.push_async_callback(close_target)
    run = _Collected(traffic_start=outcome.started_at, cleared_at=outcome.cleared_at,
                     history=outcome.history if outcome.history is not None else ctx.history,
                     samples=[(round(s["t"] * NS), s) for s in outcome.samples],
                     workload=dict(outcome.workload), pg_recovery_s=outcome.pg_recovery_s)
    notes += outcome.notes
    if target is not None:
        run.store_deadline_s = _deadline_of(target)
        died = _target_died(target)
        if died is not None:
            run.anomalies.append(crash_anomaly(died))
        sampler = StatusSampler(target)
        await _settle_and_close(target, ctx.params, sampler, run, ctx.observer, notes)
    else:
        run.flush = {"method": "none", "returned": None, "seconds": 0.0}
    if outcome.signal is not None:  # as in _run_steady: the new pod once the target is closed
        run.signal = outcome.signal
        await close_target()
        apart = await outcome.signal.check_new_pod(ctx.target_spec, ctx.env.proxy_dsn,
                                                   ctx.cache_dir.parent / "signal-new-pod")
        if apart is not None:  # recorded apart: the shape's history was merged before it
            run.history = History.merge(run.history, apart)
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


MoreWanted = Callable[[list[Repetition]], bool]


async def run_scenario(info: ScenarioInfo, params: ScenarioParams, target_spec: Any,
                       resources: ChaosResources, *, contrast: bool = False,
                       workload_config: WorkloadConfig | None = None,
                       deadline_s: float = DEFAULT_DEADLINE_S,
                       run_seed: int | None = None, more_repetitions: int = 0,
                       more_wanted: MoreWanted | None = None,
                       signal: SignalParams | None = None) -> ScenarioOutcome:
    """Every repetition of one scenario; the outcome carries the section and the figures.

    A repetition whose fault did not meet its precondition (and found no anomaly) is run
    again, up to PRECONDITION_RETRIES times; still unmet, the scenario is inconclusive.
    `deadline_s`: the harness's deadline (gate chaos-deadline-max-s).
    Each repetition's (and attempt's) seed and fault-start jitter come from `run_seed`
    (`repetition_draw`). After the planned repetitions, up to `more_repetitions` more run while
    `more_wanted(reps)` says an interval still straddles a gate (the suite decides that from
    the figures)."""
    server: ControllableServer | None = None
    server_admin_dsn = resources.server_admin_dsn
    try:
        if info.needs_process_control:
            server = await asyncio.to_thread(resources.process_server)
            if server is None:
                given = resources.process_skip_reason()  # carries its own hint: not twice
                raise ScenarioSkipped(given or (
                    f"{info.name} stops the PostgreSQL process, and this run's server is not "
                    "one the harness controls"),
                    hint=None if given else "run without --dsn (embedded server)")
            server_admin_dsn = server.dsn
        reps: list[Repetition] = []
        while True:
            index = len(reps)
            extra = index - params.repetitions
            if extra >= 0:
                if extra >= more_repetitions or more_wanted is None or not more_wanted(reps):
                    break
                resources.say(f"chaos {info.name} [{target_spec.name}]: an interval straddles "
                              f"its gate after {index} repetitions: one more "
                              f"({extra + 1} of at most {more_repetitions})")
            for attempt in range(1, PRECONDITION_RETRIES + 2):
                seed, jitter = repetition_draw(run_seed, info.name, target_spec.name,
                                               index + 1000 * (attempt - 1),
                                               params.fault_jitter_s)
                rep = await run_repetition(
                    info, replace(params, warmup_s=params.warmup_s + jitter), target_spec,
                    resources, index, server=server, server_admin_dsn=server_admin_dsn,
                    workload_config=workload_config, seed=seed, deadline_s=deadline_s,
                    attempt=attempt, signal=signal)
                rep.seed, rep.fault_jitter_s = seed, jitter
                unmet = [p for p in rep.preconditions if not p.met]
                if not unmet or not rep.check.valid or attempt > PRECONDITION_RETRIES:
                    break
                resources.say(f"chaos {info.name} [{target_spec.name}]: precondition "
                              f"{unmet[0].name} unmet ({unmet[0].detail}); running it again")
            reps.append(rep)
    except (ScenarioSkipped, NemesisUnavailable) as exc:
        reason = exc.message + (f" ({exc.hint})" if exc.hint else "")
        return results.skipped(info, params, target_spec.name, contrast, reason)
    return results.assemble(info, params, target_spec.name, reps, contrast=contrast)
