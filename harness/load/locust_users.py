"""Locust's side: the company user, the per-process context, the stats hooks, the shape.

Imported only by a Locust process (the locustfile): it imports locust, which monkey-patches the
process with gevent. The harness and pytest never import this module; they run Locust as a
subprocess (harness/load/runner.py).

Per process, lazily (after Locust's `--processes` fork): one AsyncioBridge, one open target (the
spec of AUTHSTATE_TARGET, opened on AUTHSTATE_DSN), one LoadWorkload, one LatencyRecorder. A
user is one company: `on_start` sets it up (creds, pre-keys, sessions, groups; first-connect:
Baileys' pairing upload), each task is one Baileys message (several store calls in one
coroutine, one bridge crossing); every call becomes one Locust request event (name = operation,
time = measured inside the coroutine, failure = the store's message) and one HDR record.

Merging: a worker sends its recorder's delta with every stats report (`report_to_master`), the
master adds them (`worker_report`); the master (or the single local process) writes
AUTHSTATE_LOAD_OUT/load-result.json at `quit`, after Locust's last worker reports arrived, and
prints the HDR table beside Locust's own.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import time
from pathlib import Path
from typing import Any

import gevent
import psutil
from gevent.lock import Semaphore
from locust import LoadTestShape, User, events, task
from locust.runners import MasterRunner, WorkerRunner

from harness.load import open_model
from harness.load.bridge import AsyncioBridge
from harness.load.hdr import ALL, LatencyRecorder, percentiles_ms
from harness.load.profiles import LoadProfile, shape_tick
from harness.load.result import LOCUST_PERCENTILES, atomic_json, format_table, result_document
from harness.load.settings import LoadSettings, phase_of
from harness.load.traffic import DiscardingHistory, LoadWorkload, OpResult, collect
from harness.metrics.history import History

log = logging.getLogger("harness.load")
_COMPANY = re.compile(r"company '[^']*'")
FAULT_FILE = "fault-window.json"  # the harness writes the fault's wall-clock window here
REQUEST_TYPE = "authstate"
LIVE_INTERVAL_S = 1.0
SETUP_CONCURRENCY = 16  # companies setting up at once per process (as the chaos workload does):
# a spawn burst of N pairings would otherwise queue N x 5 calls on a pool of 10 connections


class StoreFailure(Exception):
    """A failed store call, as Locust shows it: the store's own message."""


class ProcessContext:
    """Everything one Locust process shares between its users (created on first use)."""

    def __init__(self) -> None:
        self.settings: LoadSettings | None = None
        self.bridge: AsyncioBridge | None = None
        self.store: Any = None
        self.workload: LoadWorkload | None = None
        self.history: History | None = None
        self.recorder = LatencyRecorder()
        self.t0: float | None = None  # monotonic test start in this process
        self.started_wall: float | None = None
        self.rss_start: int | None = None
        self.rss_peak = 0
        self.companies = 0
        self.setup_failures = 0
        self.window_wall: tuple[float, float] | None = None  # planned fault window, wall time
        self.recorded = 0  # calls recorded by this process (the merge test sums them)
        self._lock = Semaphore()
        self.setup_gate = Semaphore(SETUP_CONCURRENCY)
        self.ready = 0  # companies whose setup completed
        self._wall_offset = time.time() - time.monotonic()

    def ensure(self) -> LoadWorkload:
        with self._lock:
            if self.workload is not None:
                return self.workload
            settings = self.settings or LoadSettings.from_env()
            self.settings = settings
            from harness.load import real_threads
            from harness.targets import resolve_target

            real_threads.install()  # the target's executors must get real threads
            spec = resolve_target(settings.target)
            self.bridge = AsyncioBridge()
            # one cache per process: a store may lock its cache_dir (the resilient one does)
            base = settings.cache_dir or Path(os.environ.get("TMPDIR", "/tmp"))
            cache = base / f"authstate-load-{settings.run_tag}-{os.getpid()}"
            cache.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.store = self.bridge.call(spec.open(settings.dsn, cache_dir=cache))
            if settings.history_dir is not None:
                settings.history_dir.mkdir(parents=True, exist_ok=True)
                self.history = History(settings.history_dir / f"history-{os.getpid()}.jsonl")
            else:
                self.history = DiscardingHistory()
            self.workload = LoadWorkload(
                self.store, self.history, run_tag=f"{settings.run_tag}-{os.getpid()}",
                process_base=(os.getpid() % 100_000) * 100_000,
                full_pre_key_share=settings.profile.full_pre_key_share, seed=settings.seed)
            self.mark_start()
            return self.workload

    def mark_start(self) -> None:
        if self.t0 is None:
            self.t0 = time.monotonic()
            self.started_wall = time.time()
        if self.rss_start is None:
            self.rss_start = psutil.Process().memory_info().rss

    def elapsed(self, monotonic_s: float) -> float:
        return monotonic_s - (self.t0 if self.t0 is not None else monotonic_s)

    def wall(self, monotonic_ns: int) -> float:
        return monotonic_ns / 1e9 + self._wall_offset

    def phase(self, end_ns: int) -> str:
        """The phase of a call by its *completion* (a call cut by a fault that began while it
        ran belongs to the fault). With the harness's wall-clock window (every process of one
        machine shares the clock), else relative to this process's test start."""
        if self.window_wall is not None:
            return phase_of(self.wall(end_ns), self.window_wall)
        settings = self.settings
        return phase_of(self.elapsed(end_ns / 1e9), settings.fault_window if settings else None)

    def run(self, coro: Any) -> tuple[list[OpResult], float, BaseException | None]:
        """Run one message (a coroutine of store calls) on the loop: (results, start, error)."""
        assert self.bridge is not None

        async def collected() -> tuple[list[OpResult], float, BaseException | None]:
            results = collect()
            started = time.monotonic()
            try:
                await coro
            except Exception as exc:  # setup failures (WorkloadSetupError) and the like
                return results, started, exc
            return results, started, None

        return self.bridge.call(collected())

    def proc_info(self) -> dict[str, Any]:
        rss = psutil.Process().memory_info().rss
        self.rss_peak = max(self.rss_peak, rss)
        return {"pid": os.getpid(), "rss_start": self.rss_start, "rss_now": rss,
                "rss_peak": self.rss_peak, "companies": self.companies,
                "recorded": self.recorded, "ready": self.ready,
                "setup_failures": self.setup_failures}

    def close(self) -> None:
        if self.bridge is None:
            return
        bridge, self.bridge = self.bridge, None
        if self.store is not None:
            try:
                from harness.targets import settle

                bridge.call(settle(self.store, within_s=30.0))  # acked writes into PostgreSQL
                bridge.call(self.store.close())
            except Exception as exc:  # closing must not hide the run's results
                log.warning("closing the target failed: %s: %s", type(exc).__name__, exc)
        bridge.close()
        if self.history is not None:
            self.history.close()


CONTEXT = ProcessContext()
_PROCS: dict[str, dict[str, Any]] = {}  # master: latest process info per worker


class CompanyUser(User):
    """One Locust user = one company (abstract: the locustfile binds a profile)."""

    abstract = True
    profile: LoadProfile

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.company: Any = None
        self.ready = False
        self.schedule: open_model.ArrivalSchedule | None = None
        self.last_storm = 0.0

    def wait_time(self) -> float:
        settings = CONTEXT.settings
        if settings is not None and settings.rate:
            return 0.0  # open model: the task paces itself on its schedule
        mean = 1.0 / self.profile.message_rate_hz
        return random.uniform(0.5 * mean, 1.5 * mean)

    def on_start(self) -> None:
        workload = CONTEXT.ensure()
        settings = CONTEXT.settings
        assert settings is not None
        self.company = workload.add_company(f"{workload.values.run_tag}-{len(workload.companies)}")
        CONTEXT.companies += 1
        self._setup()
        if settings.rate:
            companies = settings.companies or getattr(
                self.environment.parsed_options, "num_users", None) or 1
            self.schedule = open_model.ArrivalSchedule.for_company(
                time.monotonic(), settings.rate, int(companies),
                self.company.rng.randrange(int(companies)))
        if self.profile.storm_every_s:
            self.last_storm = self._storm_slot()

    def _setup(self) -> None:
        assert CONTEXT.workload is not None
        pair = self.profile.setup == "pair"
        with CONTEXT.setup_gate:
            results, _, error = CONTEXT.run(
                CONTEXT.workload.setup_company(self.company, pair=pair))
        self._record(results, phase="setup")
        self.ready = error is None
        CONTEXT.ready += self.ready
        if error is not None:
            CONTEXT.setup_failures += 1
            # a half set-up company starts again from a fresh state on its next task
            self.company.contacts.clear()
            self.company.groups.clear()

    def _storm_slot(self) -> float:
        every = self.profile.storm_every_s or 0.0
        return (time.time() // every) * every if every else 0.0

    @task
    def message(self) -> None:
        if not self.ready:
            gevent.sleep(1.0)
            self._setup()
            return
        assert CONTEXT.workload is not None
        intended = None
        if self.schedule is not None:
            intended = self.schedule.next_intended()
            delay = intended - time.monotonic()
            if delay > 0:
                gevent.sleep(delay)
        kind = CONTEXT.workload.pick(self.company, self.profile.mix)
        if self.profile.storm_every_s:
            slot = self._storm_slot()
            if slot > self.last_storm:
                self.last_storm, kind = slot, "reconnect_full"
        results, _started, _ = CONTEXT.run(CONTEXT.workload.message(self.company, kind))
        self._record(results, intended=intended)

    def _record(self, results: list[OpResult], *, phase: str | None = None,
                intended: float | None = None) -> None:
        fire = self.environment.events.request.fire
        latencies = open_model.message_latencies(
            [(r.start_ns / 1e9, r.elapsed_ns / 1000.0) for r in results], intended)
        for r, (raw_us, corrected_us) in zip(results, latencies, strict=True):
            op_phase = phase or CONTEXT.phase(r.start_ns + r.elapsed_ns)
            error = None if r.error is None else _COMPANY.sub("company '<id>'", r.error)
            CONTEXT.recorded += 1
            CONTEXT.recorder.record(
                r.name, op_phase, raw_us, ok=r.ok, second=int(CONTEXT.wall(r.start_ns)),
                corrected_us=corrected_us, error=error)
            fire(request_type=REQUEST_TYPE, name=r.name, response_time=raw_us / 1000.0,
                 response_length=0, context={},
                 exception=None if r.ok else StoreFailure(error or "failed"))


def make_shape(profile: LoadProfile) -> type[LoadTestShape]:
    """A LoadTestShape for a shaped profile; N and the duration are Locust's -u and -t."""

    class ProfileShape(LoadTestShape):
        use_common_options = True

        def tick(self) -> tuple[int, float] | None:
            options = self.runner.environment.parsed_options
            users = int(getattr(options, "num_users", None) or 10)
            duration = float(getattr(options, "run_time", None) or profile.default_duration_s)
            return shape_tick(profile, self.get_run_time(), users, duration)

    ProfileShape.__name__ = ProfileShape.__qualname__ = (
        profile.name.title().replace("-", "") + "Shape")
    return ProfileShape


# -- events ---------------------------------------------------------------------------------------
def _is_worker(environment: Any) -> bool:
    return isinstance(environment.runner, WorkerRunner)


def _is_master(environment: Any) -> bool:
    return isinstance(environment.runner, MasterRunner)


def _locust_stats(environment: Any) -> dict[str, Any]:
    """Locust's own figures per request name (its bucketed percentiles), ms."""
    out: dict[str, Any] = {}
    stats = environment.runner.stats
    entries = [(name, entry) for (name, _method), entry in stats.entries.items()]
    entries.append((ALL, stats.total))
    for name, entry in entries:
        out[name] = {"count": entry.num_requests, "failures": entry.num_failures,
                     **{f"p{label}_ms": (entry.get_response_time_percentile(q)
                                         if entry.num_requests else None)
                        for label, q in LOCUST_PERCENTILES}}
    return out


def _live(environment: Any, out_dir: Path) -> None:
    """Every second: users, ops/s, p99 of the last complete second, failures (live.json)."""
    while True:
        gevent.sleep(LIVE_INTERVAL_S)
        runner = environment.runner
        if runner is None:
            continue
        total = runner.stats.total
        timeline = CONTEXT.recorder.timeline
        last = sorted(timeline)[-2:-1]
        p99 = None
        if last:
            hist = timeline[last[0]][2]
            p99 = round(hist.get_value_at_percentile(99.0) / 1000.0, 3)
        doc = {"wall": time.time(), "started_wall": CONTEXT.started_wall,
               "state": str(runner.state), "users": runner.user_count,
               "ops_per_s": round(total.current_rps, 1), "count": total.num_requests,
               "failures": total.num_failures, "p99_ms": p99}
        try:
            atomic_json(out_dir / "live.json", doc)
        except OSError as exc:
            log.warning("cannot write live.json: %s", exc)


def _watch_fault_file(path: Path) -> None:
    """Until the harness says when its fault is planned (wall clock), look every 0.2 s."""
    while CONTEXT.window_wall is None:
        try:
            doc = json.loads(path.read_text())
            CONTEXT.window_wall = (float(doc["start_wall"]), float(doc["end_wall"]))
        except (OSError, ValueError, KeyError):
            gevent.sleep(0.2)


def install() -> None:
    """Hook the process into Locust's events (once, from the locustfile)."""

    @events.init.add_listener
    def _init(environment: Any, **_: Any) -> None:
        CONTEXT.settings = LoadSettings.from_env()
        out = CONTEXT.settings.out_dir
        if out is not None and CONTEXT.settings.fault_window is not None:
            gevent.spawn(_watch_fault_file, out / FAULT_FILE)
        if out is not None and not _is_worker(environment):
            out.mkdir(parents=True, exist_ok=True)
            gevent.spawn(_live, environment, out)

    @events.test_start.add_listener
    def _test_start(environment: Any, **_: Any) -> None:
        CONTEXT.mark_start()

    @events.report_to_master.add_listener
    def _report(client_id: str, data: dict[str, Any], **_: Any) -> None:
        data["authstate"] = {"hdr": CONTEXT.recorder.take_delta(), "proc": CONTEXT.proc_info()}

    @events.worker_report.add_listener
    def _worker_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
        part = data.get("authstate")
        if part:
            CONTEXT.recorder.absorb(part["hdr"])
            _PROCS[client_id] = part["proc"]

    @events.quit.add_listener
    def _quit(exit_code: int, **_: Any) -> None:
        environment = _ENV.get("env")
        if environment is not None and not _is_worker(environment):
            _write_result(environment)
        CONTEXT.close()

    @events.init.add_listener
    def _keep_env(environment: Any, **_: Any) -> None:
        _ENV["env"] = environment


_ENV: dict[str, Any] = {}


def _write_result(environment: Any) -> None:
    settings = CONTEXT.settings
    if _is_master(environment):
        procs = list(_PROCS.values())
    else:
        procs = [CONTEXT.proc_info()] if CONTEXT.bridge is not None else []
    options = environment.parsed_options
    doc = result_document(
        recorder=CONTEXT.recorder, locust=_locust_stats(environment),
        profile=settings.profile.name if settings else None,
        users=int(getattr(options, "num_users", 0) or 0),
        processes=len(procs) or 1, rate=settings.rate if settings else None,
        started_wall=CONTEXT.started_wall, ended_wall=time.time(), procs=procs,
        target=settings.target if settings else None)
    print("\n" + format_table(doc), flush=True)
    if settings is not None and settings.out_dir is not None:
        settings.out_dir.mkdir(parents=True, exist_ok=True)
        atomic_json(settings.out_dir / "load-result.json", doc)


def dumps(doc: Any) -> str:
    return json.dumps(doc, indent=1)


__all__ = ["CONTEXT", "CompanyUser", "StoreFailure", "install", "make_shape", "percentiles_ms"]
