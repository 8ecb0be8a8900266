"""The harness side of a load run: Locust as a subprocess we own, a fault on cue, the checker.

Locust is never imported here (its gevent monkey-patching would change every other suite of a
pytest session): `run_load` starts `python -m locust -f scenarios/load/locustfile.py` in a new
process group (its `--processes` workers are forked into that group), follows its live.json
for progress and for the test's start (the fault's clock), and stops the whole group on exit,
Ctrl-C or failure: SIGTERM, then SIGKILL after a grace period.

Afterwards it reads the merged HDR result the Locust master wrote, and, when operation
histories were recorded (always with a fault), merges the per-process histories and judges them
with the chaos checker against a final read of PostgreSQL, plus MTTD / RTO per company.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.load.faults import FaultDriver, FaultPlan, FaultRun
from harness.load.result import atomic_json, read_result
from harness.paths import import_root, project_dir, suite_root

LOCUSTFILE = Path("scenarios") / "load" / "locustfile.py"
FAULT_FILE = "fault-window.json"  # read by the Locust processes (locust_users.FAULT_FILE)
STARTUP_GRACE_S = 60.0  # imports, forks, first spawn
STOP_GRACE_S = 20.0  # final stats, closing the stores (the resilient one flushes)
KILL_GRACE_S = 10.0


class LoadRunError(HarnessError):
    """Locust did not run or did not leave its result."""


@dataclass(frozen=True)
class LoadPlan:
    profile: str = "steady"
    companies: int = 100
    duration_s: float = 60.0
    rate: float | None = None  # open model: messages/s in total
    processes: int = 1
    target: str = "reference"
    fault: FaultPlan | None = None
    spawn_rate: float | None = None  # companies started per second (default min(N, 50))
    history: bool = False  # record operation histories and run the checker (always w/ fault)
    seed: int = 0

    @property
    def model(self) -> str:
        return "open" if self.rate else "closed"

    @property
    def records_history(self) -> bool:
        return self.history or self.fault is not None


@dataclass
class LoadEnv:
    """Where the load goes: the target's DSN (through the fault proxy), the truth's DSN."""

    dsn: str
    admin_dsn: str  # superuser, this database, straight to PostgreSQL (final read)
    make_chaos_env: Callable[..., Any] | None = None  # FaultTimeline -> ChaosEnv (faults)


@dataclass
class LoadOutcome:
    plan: LoadPlan
    out_dir: Path
    result: dict[str, Any]
    exit_code: int
    live: list[dict[str, Any]] = field(default_factory=list)
    started_monotonic: float | None = None
    fault: FaultRun | None = None
    check: dict[str, Any] | None = None
    recovery: dict[str, Any] | None = None
    history_ops: int = 0
    wall_s: float = 0.0


def locust_command(plan: LoadPlan, out_dir: Path) -> list[str]:
    spawn = plan.spawn_rate or float(min(plan.companies, 50))
    seconds = max(1, round(plan.duration_s))
    # -P: the project directory (cwd) is not on sys.path, so nothing there shadows `harness`
    cmd = [sys.executable, "-P", "-m", "locust", "-f", str(suite_root() / LOCUSTFILE),
           "--headless",
           "-u", str(plan.companies), "-r", f"{spawn:g}", "-t", f"{seconds}s",
           "--csv", str(out_dir / "locust"), "--html", str(out_dir / "locust.html"),
           "--only-summary", "--stop-timeout", "5"]
    if plan.processes > 1:
        cmd += ["--processes", str(plan.processes)]
    return cmd


def locust_env(plan: LoadPlan, env: LoadEnv, out_dir: Path, run_tag: str,
               cache_dir: Path) -> dict[str, str]:
    out = os.environ.copy()
    for stale in [k for k in out if k.startswith("AUTHSTATE_")]:
        del out[stale]  # only what this run says reaches the Locust processes
    out.update(
        AUTHSTATE_DSN=env.dsn, AUTHSTATE_TARGET=plan.target, AUTHSTATE_PROFILE=plan.profile,
        AUTHSTATE_COMPANIES=str(plan.companies), AUTHSTATE_LOAD_OUT=str(out_dir),
        AUTHSTATE_CACHE_DIR=str(cache_dir), AUTHSTATE_RUN_TAG=run_tag,
        AUTHSTATE_SEED=str(plan.seed), PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join([str(import_root()), out.get("PYTHONPATH", "")]).rstrip(
            os.pathsep))
    if plan.rate:
        out["AUTHSTATE_RATE"] = f"{plan.rate:g}"
    if plan.records_history:
        out["AUTHSTATE_HISTORY_DIR"] = str(out_dir / "history")
    if plan.fault is not None:
        out["AUTHSTATE_FAULT_WINDOW"] = f"{plan.fault.start_s:g},{plan.fault.end_s:g}"
    return out


class LocustProcess:
    """`python -m locust ...` in a process group of its own; `stop()` ends the whole group."""

    def __init__(self, cmd: list[str], env: dict[str, str], log_path: Path) -> None:
        self.cmd, self.env, self.log_path = cmd, env, log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    def __enter__(self) -> LocustProcess:
        self._log = open(self.log_path, "wb")  # closed in __exit__
        self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=project_dir(), stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        return self

    def poll(self) -> int | None:
        assert self.proc is not None
        return self.proc.poll()

    def stop(self) -> None:
        """SIGTERM to the group (Locust writes its stats), SIGKILL to what is left -- at once
        if a second Ctrl-C interrupts the grace period; the group is killed whatever happens."""
        proc = self.proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(STOP_GRACE_S)
        finally:
            with contextlib.suppress(ProcessLookupError):  # the master and forked workers
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(KILL_GRACE_S)

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._log is not None:
            self._log.close()

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(collections.deque(text, maxlen=lines))


def _read_live(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_load(plan: LoadPlan, env: LoadEnv, out_dir: Path, *,
             on_live: Callable[[dict[str, Any]], None] | None = None,
             say: Callable[[str], None] = lambda _line: None,
             run_tag: str | None = None) -> LoadOutcome:
    """Run Locust for `plan`, inject the fault on cue, judge histories; see module doc."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("load-result.json", "live.json", FAULT_FILE):
        with contextlib.suppress(FileNotFoundError):
            (out_dir / stale).unlink()
    tag = run_tag or f"ld{os.getpid() % 10_000}{int(time.time()) % 100_000}"
    began = time.monotonic()
    live: list[dict[str, Any]] = []
    fault_driver: FaultDriver | None = None
    if plan.fault is not None:
        if env.make_chaos_env is None:
            raise LoadRunError("a fault needs the fault proxy, and this run has none",
                               hint="run through `authstate-harness load` (it provisions one)")
        fault_driver = FaultDriver(plan.fault, env.make_chaos_env, say)
    started: float | None = None
    deadline = began + STARTUP_GRACE_S + plan.duration_s + STOP_GRACE_S
    # The target's cache (the resilient store keeps creds and a journal there) holds key
    # material: a private temp folder, removed afterwards, never the run folder.
    cache = Path(tempfile.mkdtemp(prefix="authstate-load-cache-"))
    observer = _observer(plan, env, out_dir) if plan.fault is not None else None
    with contextlib.ExitStack() as cleanup, \
            LocustProcess(locust_command(plan, out_dir),
                          locust_env(plan, env, out_dir, tag, cache),
                          out_dir / "locust.log") as locust:
        cleanup.callback(shutil.rmtree, cache, True)
        if observer is not None:
            cleanup.callback(observer.close)
        try:
            while locust.poll() is None:
                if time.monotonic() > deadline:
                    say("locust overran its run time; stopping it")
                    break
                doc = _read_live(out_dir / "live.json")
                if doc is not None and (not live or doc["wall"] != live[-1]["wall"]):
                    live.append(doc)
                    if on_live is not None:
                        on_live(doc)
                    if started is None and doc.get("started_wall"):
                        started = time.monotonic() - (time.time() - doc["started_wall"])
                        if fault_driver is not None and plan.fault is not None:
                            atomic_json(out_dir / FAULT_FILE, {
                                "start_wall": doc["started_wall"] + plan.fault.start_s,
                                "end_wall": doc["started_wall"] + plan.fault.end_s})
                            fault_driver.start(started)
                time.sleep(0.2)
        finally:
            if fault_driver is not None:
                fault_driver.stop()
                fault_driver.join()
        locust.stop()
        code = locust.poll()
        tail = locust.tail()
        observations = None if observer is None else observer.call(observer.observer.stop())
    result_path = out_dir / "load-result.json"
    if not result_path.exists():
        raise LoadRunError(f"Locust exited ({code}) without writing {result_path.name}; its "
                           f"log ends:\n{tail}",
                           hint=f"see {out_dir / 'locust.log'}; run the locustfile by hand "
                                "with AUTHSTATE_DSN set to reproduce")
    outcome = LoadOutcome(plan=plan, out_dir=out_dir, result=read_result(result_path),
                          exit_code=-1 if code is None else code, live=live,
                          started_monotonic=started,
                          fault=None if fault_driver is None else fault_driver.run)
    if plan.records_history:
        say("checking the operation history against PostgreSQL")
        asyncio.run(_judge(outcome, env, observations))
    outcome.wall_s = time.monotonic() - began
    return outcome


def _observer(plan: LoadPlan, env: LoadEnv, out_dir: Path) -> Any:
    """The chaos observer (its own process, harness.chaos.observer) following the Locust
    processes' history files as they write them: recovery under load is observed, not taken
    from the store."""
    from harness.chaos.observer import Observer, ObserverThread

    history_dir = out_dir / "history"
    history_dir.mkdir(parents=True, exist_ok=True)
    observer = ObserverThread(Observer(env.admin_dsn, out_dir, target=plan.target,
                                       probe_dsn=env.dsn))
    try:
        observer.call(observer.observer.open())
        observer.call(observer.observer.follow_dir(history_dir, "history-*.jsonl"))
        observer.call(observer.observer.start())
    except BaseException:
        observer.close()
        raise
    return observer


async def _judge(outcome: LoadOutcome, env: LoadEnv, observations: Any = None) -> None:
    """Merge the per-process histories; checker against a final read; recovery per company,
    observed (and the store's own, as reported) when a fault ran."""
    from harness.chaos.nemesis_api import DEFAULT_DEADLINE_S
    from harness.chaos.results import HANG_MARGIN_S
    from harness.chaos.scenario import metric_windows
    from harness.metrics.checker import check
    from harness.metrics.durability import Durability
    from harness.metrics.history import History
    from harness.metrics.observed_recovery import observed_recovery
    from harness.metrics.recovery import recovery, summarize
    from harness.observe import refs_of_history
    from harness.observe.final_read import final_read
    from harness.targets import resolve_target

    files = sorted((outcome.out_dir / "history").glob("history-*.jsonl"))
    if not files:
        outcome.check = {"valid": False, "error": "no operation history was recorded"}
        return
    histories = [History.read_jsonl(f) for f in files]
    history = histories[0] if len(histories) == 1 else History.merge(*histories)
    ops = history.ops()
    outcome.history_ops = len(ops)
    companies = sorted({op.company for op in ops})
    # the durable state as a reader from outside sees it: the harness's tables, or a fresh
    # instance of the target when it keeps its own schema (harness.observe)
    final = await final_read(env.admin_dsn, companies,
                             target_spec=resolve_target(outcome.plan.target),
                             work_dir=outcome.out_dir, refs_by_company=refs_of_history(history))
    durability = None
    if observations is not None:
        observations.record_final(time.monotonic_ns(), final.final)
        durability = Durability(ops, observations)
    result = check(history, final.final, final_meta=final.final_meta, durability=durability,
                   hang_after_s=None if durability is None else DEFAULT_DEADLINE_S + HANG_MARGIN_S,
                   unreadable=final.unreadable)
    outcome.check = result.summary(examples=3)
    if outcome.fault is not None and outcome.fault.timeline.windows:
        windows = metric_windows(outcome.fault.timeline, outcome.fault.cleared_at)
        reported = summarize([recovery(history, windows, companies=companies)])
        if durability is None:
            outcome.recovery = {**reported, "source": "reported by the store"}
        else:
            observed = observed_recovery(history, windows, durability,
                                         deadline_s=DEFAULT_DEADLINE_S, companies=companies)
            outcome.recovery = {**summarize([observed]), "reported": reported,
                                "observer": observations.summary()}
